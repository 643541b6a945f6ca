"""The queue side of the spine: writing the django-q2 task that runs a job's next attempt.

Each kind runs in a lane (its registration says which): a django-q2 cluster whose name is
its queue. A job a person asked for waits in its lane's people queue (offload/jobs/lanes.py).

With the ORM broker (the default) the queue row is written in the caller's transaction,
so a job row and its task commit together or not at all. A broker outside the database
(OFFLOAD_Q_BROKER=redis) gets the task only once the job has committed.
"""

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.humanhash import humanize
from django_q.models import Schedule
from django_q.signals import pre_enqueue
from django_q.signing import SignedPackage
from django_q.tasks import async_task, schedule

from offload.jobs.kinds import get_kind
from offload.jobs.lanes import LaneBroker, broker_for, queue_of
from offload.models import Job

# The one task every job runs through. Stored in queue rows and schedules: renaming it
# needs a data migration (see offload/migrations/0006_dotted_paths.py).
EXECUTE = "offload.jobs.runner.execute"
# The task_id of a job parked while its kind is paused (offload/jobs/control.py): no queue
# row holds it until its kind is resumed.
PARKED_TASK = "paused"


def new_task_id() -> str:
    """An id for the next task, known before the job row is written (so the row carries it from the start)."""
    return uuid.uuid4().hex if settings.Q_CLUSTER.get("orm") else ""


def push(job: Job, not_before: datetime | None = None, *, recorded: bool = False) -> None:
    """Queue the job's next attempt: in the caller's transaction (ORM broker), or once it commits.

    `recorded`: job.task_id is a fresh id from new_task_id() that the caller already wrote
    with the job's row, which spares an UPDATE.
    """
    if not settings.Q_CLUSTER.get("orm"):
        _push_after_commit(job, get_kind(job.kind).timeout_for(job), not_before)
        return
    queue = queue_of(job)
    broker = LaneBroker(queue, not_before) if not_before is not None else broker_for(queue)
    task_id = job.task_id if recorded and job.task_id else uuid.uuid4().hex
    broker.enqueue(task_package(task_id, job.pk, job))
    if task_id != job.task_id:
        Job.objects.filter(pk=job.pk).update(task_id=task_id)
        job.task_id = task_id


def task_package(task_id: str, job_id: int, job: Job) -> str:
    """The signed django-q2 task for EXECUTE with an id chosen beforehand (async_task draws its own)."""
    task: dict[str, Any] = {"id": task_id, "name": humanize(task_id), "func": EXECUTE, "args": (job_id,)}
    task["timeout"] = get_kind(job.kind).timeout_for(job)
    if Conf.CACHED:
        task["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    task["kwargs"] = {}
    task["started"] = timezone.now()
    pre_enqueue.send(sender="django_q", task=task)
    return SignedPackage.dumps(task)


def _push_after_commit(job: Job, timeout: int, not_before: datetime | None) -> None:
    """A broker outside the database (OFFLOAD_Q_BROKER=redis): the task leaves only once the job commits."""
    if not_before is not None:
        # Redis cannot hold a task back: a one-off schedule, written in this transaction, is
        # handed to the broker by the cluster's scheduler (about every 30 s) once it is due.
        due = schedule(
            EXECUTE,
            job.pk,
            schedule_type=Schedule.ONCE,
            next_run=not_before,
            cluster=queue_of(job),
            q_options={"timeout": timeout},
        )
        job.task_id = f"schedule:{due.pk}"
        Job.objects.filter(pk=job.pk).update(task_id=job.task_id)
        return
    if job.task_id:
        # Empty until the push below records its task: how reap_stale_jobs finds a lost push.
        Job.objects.filter(pk=job.pk).update(task_id="")
        job.task_id = ""
    job_id = job.pk
    queue = queue_of(job)

    def push() -> None:
        task_id = async_task(EXECUTE, job_id, timeout=timeout, broker=broker_for(queue))
        Job.objects.filter(pk=job_id, task_id="").update(task_id=task_id)

    # robust: the job is committed whatever happens here; a failed push is logged and the
    # reaper pushes the job again.
    transaction.on_commit(push, robust=True)
