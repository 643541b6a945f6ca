"""JobEvent: the append-only log of job state changes that clients replay."""

from django.db import transaction
from django.db.models import F

from offload.models import EventSequence, Job, JobEvent


def next_seq() -> int:
    """Take the next event seq; the row lock is held until the caller's transaction ends."""
    updated = EventSequence.objects.filter(pk=1).update(last_seq=F("last_seq") + 1)
    if not updated:
        # The row is created by a data migration; this covers a database flushed by tests.
        EventSequence.objects.get_or_create(pk=1)
        EventSequence.objects.filter(pk=1).update(last_seq=F("last_seq") + 1)
    return EventSequence.objects.values_list("last_seq", flat=True).get(pk=1)


def record_event(job: Job, event: str) -> JobEvent:
    """Append a JobEvent for the job's current state, inside the caller's transaction."""
    from offload.jobs import job_payload

    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must run inside the transaction that changed the job")
    # Taken last, so the sequence row stays locked for as short a time as possible.
    seq = next_seq()
    return JobEvent.objects.create(seq=seq, job=job, user_id=job.requested_by_id, event=event, payload=job_payload(job))
