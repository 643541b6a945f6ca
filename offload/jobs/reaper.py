"""The reaper: gives a new delivery to jobs whose worker was lost (run by a django-q2 schedule)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import BadSignature, SignedPackage

from offload.jobs import transitions
from offload.jobs.lanes import job_lanes, lane_queue, people_key
from offload.jobs.queue import EXECUTE, PARKED_TASK, push
from offload.models import Job, JobStatus

log = logging.getLogger(__name__)


def requeue_lost_jobs() -> list[int]:
    """Put running jobs whose worker stopped beating back in the queue, each with its "attempt lost" event.

    Cheap enough for every worker's heartbeat thread to call between beats (a partial index
    holds only running jobs), so a lost job is taken over within seconds of going stale, not
    at the reaper's next minute.
    """
    stale = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS)
    ids = Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale).values_list("pk", flat=True)
    requeued = [job_id for job_id in ids if transitions.requeue_lost(job_id) is not None]
    if requeued:
        log.warning("re-queued %d job(s) whose worker was lost: %s", len(requeued), requeued)
    return requeued


def reap_stale_jobs() -> int:
    """Re-queue running jobs whose worker stopped beating, and push lost deliveries again; answer how many."""
    stale = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS)
    lost = requeue_lost_jobs()
    ids = []
    if not settings.Q_CLUSTER.get("orm"):
        # A push after commit that failed (Redis away) left its job queued with no task.
        unpushed = Job.objects.filter(status=JobStatus.QUEUED, task_id="", queued_at__lt=stale)
        ids += unpushed.values_list("pk", flat=True)
    else:
        ids += _taken_by_a_lost_cluster(stale)
        ids += _missing_from_the_queue(stale)
    ids = list(dict.fromkeys(ids))
    for job_id in ids:
        job = Job.objects.get(pk=job_id)
        with transaction.atomic():
            Job.objects.filter(pk=job_id).update(queued_at=timezone.now())
            push(job)
    if ids:
        log.warning("pushed %d queued job(s) again whose delivery was lost: %s", len(ids), ids)
    return len(lost) + len(ids)


def _missing_from_the_queue(stale) -> list[int]:
    """Queued jobs, due before `stale`, whose queue row is gone (ORM broker).

    The django-q admin lets an operator delete queue rows; a job whose row went that way
    would stay queued for ever. Each row is read only when some job has waited that long.
    """
    # A job parked while its kind is paused has no queue row on purpose (offload/jobs/control.py).
    waiting = list(
        Job.objects.filter(status=JobStatus.QUEUED, queued_at__lt=stale)
        .exclude(task_id=PARKED_TASK)
        .values_list("pk", "task_id")
    )
    if not waiting:
        return []
    present = set()
    for payload in OrmQ.objects.filter(key__in=_lane_keys()).values_list("payload", flat=True).iterator():
        try:
            task = SignedPackage.loads(payload)
        except BadSignature:
            continue
        if isinstance(task, dict) and task.get("func") == EXECUTE:
            present.add(task.get("id"))
    return [pk for pk, task_id in waiting if task_id not in present]


def _lane_keys() -> list[str]:
    """Every queue a job's task can wait in: each lane's backlog and its people's queue."""
    queues = [lane_queue(lane) for lane in job_lanes()]
    return queues + [people_key(queue) for queue in queues]


def _taken_by_a_lost_cluster(stale) -> list[int]:
    """Queued jobs whose task a cluster took before `stale` and never started (ORM broker).

    A cluster takes tasks ahead of its workers (django-q2's queue_limit, plus one its pusher
    holds) and locks their rows for `retry` seconds, eight hours by default: when it dies, those
    jobs would wait that long, still queued, out of the reaper's sight. A pusher locks a row
    `retry` or more after its job was queued; a delayed row (backoff, deferral) is locked only
    its delay after, which is shorter, so the two are told apart. A live but busy cluster's
    job may be pushed again as well: the first delivery claims it, the other does nothing.
    """
    retry = timedelta(seconds=settings.Q_CLUSTER["retry"])
    taken = {}
    rows = OrmQ.objects.filter(key__in=_lane_keys(), lock__gt=timezone.now(), lock__lt=stale + retry)
    for row in rows:
        if row.task.get("func") == EXECUTE:
            taken[row.task["id"]] = row.lock - retry
    queued = Job.objects.filter(status=JobStatus.QUEUED, task_id__in=list(taken)).values_list(
        "pk", "task_id", "queued_at"
    )
    return [pk for pk, task_id, queued_at in queued if taken[task_id] >= queued_at]
