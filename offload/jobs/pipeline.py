"""What a request does to the identical job already active: it joins it rather than make another.

A pipeline's later stages follow the job that stands in for its stage, and a person's request
moves a backlogged job to the people's queue. Both are conditional changes of the active job,
so a worker finishing it at the same moment either sees the change or finished first.
"""

from django.db import transaction
from django.utils import timezone

from offload.jobs.queue import PARKED_TASK, push
from offload.models import ACTIVE_STATUSES, Job, JobStatus


def join_stages(job: Job, then: list[str]) -> list[str]:
    """The active job stands in for a pipeline's stage: the stages after it follow it too.

    Answers the stages the caller must queue itself: those the job did not know of, when it
    had already succeeded.
    """
    with transaction.atomic():
        # Locked: a worker finishing the job either waits for the merge and reads it, or
        # finished first, and then the stages it did not know of are the caller's to queue.
        row = Job.objects.select_for_update().filter(pk=job.pk).values_list("status", "then").first()
        if row is None:
            return []
        status, stages = row
        missing = [kind for kind in then if kind not in stages]
        if not missing:
            return []
        if status in ACTIVE_STATUSES:
            job.then = stages + missing
            Job.objects.filter(pk=job.pk).update(then=job.then)
            return []
        return missing if status == JobStatus.SUCCEEDED else []


def promote(job: Job, priority: int) -> None:
    """A person asked for a job the backlog already holds: its task moves to the people's queue."""
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED, priority__lt=priority).update(priority=priority):
            return
        job.priority = priority
        # The old task may still be delivered too: whichever comes first claims the job, the
        # other finds nothing to do. A parked job (its kind paused) stays parked.
        if job.task_id != PARKED_TASK:
            job.queued_at = Job.objects.filter(pk=job.pk).values_list("queued_at", flat=True).get()
            push(job, not_before=job.queued_at if job.queued_at > timezone.now() else None)
