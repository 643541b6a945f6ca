"""A person's requests on an existing job: cancel it, or run it again.

Each is one transaction with its event, like the worker's transitions (offload/jobs/transitions.py);
a new job is asked for through offload/jobs/accept.py or `enqueue`.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from offload.jobs import cancel_flags
from offload.jobs.errors import JobConflict
from offload.jobs.events import record_event
from offload.jobs.identity import active_twin
from offload.jobs.queue import push
from offload.models import Job, JobPriority, JobStatus


def cancel(job: Job, user) -> Job:
    """Cancel a queued job at once, or ask a running job's worker to stop."""
    now = timezone.now()
    with transaction.atomic():
        cancelled = Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update_returning(
            into=job,
            status=JobStatus.CANCELLED,
            finished_at=now,
            cancel_requested_at=now,
            cancelled_by=user,
            error="Cancelled before it started.",
        )
        if cancelled is not None:
            record_event(job, JobStatus.CANCELLED, nobody_joined=not job.has_members)
            return job
        if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, cancelled_by=user
        ):
            job_id = job.pk
            transaction.on_commit(lambda: cancel_flags.raise_flag(job_id))
        job.refresh_from_db()
    if job.is_finished:
        raise JobConflict(f"Job {job.pk} already {job.status}; there is nothing to cancel.")
    return job


# What a person's retry resets: the job runs again from a fresh set of attempts, before the backlog.
_FRESH_RUN = {
    "status": JobStatus.QUEUED,
    "attempts": 0,
    "priority": JobPriority.PERSON,
    **dict.fromkeys(("progress", "error", "result", "started_at", "finished_at", "heartbeat_at"), None),
    **dict.fromkeys(("cancel_requested_at", "cancelled_by"), None),
    **dict.fromkeys(("failure_group", "failure_exception", "failure_message"), ""),
}


def retry(job: Job, user) -> Job:
    """Run a failed or cancelled job again, from a fresh set of attempts."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                again = Job.objects.filter(pk=job.pk, status__in=(JobStatus.FAILED, JobStatus.CANCELLED)).update(
                    queued_at=timezone.now(), **_FRESH_RUN
                )
        except IntegrityError:
            twin = active_twin(job.kind, job.target_type, job.target_id, job.params_hash)
            raise JobConflict(f"An identical job is already active (job {twin.pk if twin else '?'}).") from None
        job.refresh_from_db()
        if not again:
            raise JobConflict(f"Job {job.pk} is {job.status}; only failed or cancelled jobs can be retried.")
        record_event(job, JobStatus.QUEUED)
        push(job)
        # The last attempt's cancel flag must not cancel this one (the runner also checks the row).
        job_id = job.pk
        transaction.on_commit(lambda: cancel_flags.lower_flag(job_id), robust=True)
    return job
