"""A running attempt's liveness: its heartbeat (with progress and partial result) and the cancel it is asked to obey.

None of these changes a job's status: the worker writes them while the attempt runs, fenced by
`attempts` as every write of an attempt is (offload/jobs/transitions.py changes the status).
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from offload.jobs import statements
from offload.jobs.events import record_event, wanted_in_transaction_sql
from offload.models import Job


def heartbeat(
    job: Job, progress: float | None = None, partial_result: dict[str, Any] | None = None, *, announce: bool = True
) -> bool:
    """Record that the attempt is alive (and its progress, ETA …). False when it lost the job.

    announce=False: the row takes the progress, the event log does not (offload/jobs/runner.py
    logs progress every few seconds only).
    """
    changes: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if progress is not None:
        changes["progress"] = progress
    if partial_result is not None:
        changes["result"] = partial_result
    if progress is None or not announce:
        # A bare heartbeat, or progress kept on the row alone, announces nothing: no need for the row back.
        alive = Job.objects.for_attempt(job).update(**changes)
    elif statements.supported() and wanted_in_transaction_sql(job, "progress") == "FALSE":
        alive = statements.progress(job, changes) is not None
    else:
        with transaction.atomic():
            row = Job.objects.for_attempt(job).update_returning(**changes)
            if row is not None:
                record_event(job, "progress", nobody_joined=not row.has_members)
            alive = row is not None
    if alive:
        job.progress = progress if progress is not None else job.progress
        job.result = partial_result if partial_result is not None else job.result
    return bool(alive)


def cancel_requested(job: Job) -> bool:
    """Whether someone asked the job to stop (the row, not the Redis flag that only wakes the worker)."""
    return Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=False).exists()
