"""The reaper: gives a new delivery to jobs whose worker was lost (run by a django-q2 schedule)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ

from offload.jobs.broker import people_key
from offload.jobs.queue import EXECUTE, job_lanes, lane_queue, push
from offload.models import Job, JobStatus

log = logging.getLogger(__name__)


def reap_stale_jobs() -> int:
    """Queue a new delivery for running jobs whose worker stopped beating (and lost pushes); answer how many."""
    stale = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS)
    ids = list(Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale).values_list("pk", flat=True))
    if not settings.Q_CLUSTER.get("orm"):
        # A push after commit that failed (Redis away) left its job queued with no task.
        unpushed = Job.objects.filter(status=JobStatus.QUEUED, task_id="", queued_at__lt=stale)
        ids += unpushed.values_list("pk", flat=True)
    else:
        ids += _taken_by_a_lost_cluster(stale)
    for job_id in ids:
        job = Job.objects.get(pk=job_id)
        with transaction.atomic():
            Job.objects.filter(pk=job_id).update(queued_at=timezone.now())
            push(job)
    if ids:
        log.warning("re-queued %d job(s) whose worker was lost: %s", len(ids), ids)
    return len(ids)


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
    queues = [lane_queue(lane) for lane in job_lanes()]
    keys = queues + [people_key(queue) for queue in queues]
    rows = OrmQ.objects.filter(key__in=keys, lock__gt=timezone.now(), lock__lt=stale + retry)
    for row in rows:
        if row.task.get("func") == EXECUTE:
            taken[row.task["id"]] = row.lock - retry
    queued = Job.objects.filter(status=JobStatus.QUEUED, task_id__in=list(taken)).values_list(
        "pk", "task_id", "queued_at"
    )
    return [pk for pk, task_id, queued_at in queued if taken[task_id] >= queued_at]
