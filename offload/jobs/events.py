"""JobEvent: the append-only log of job state changes that clients replay, and its one seam.

Every change of a job passes through `record_event()`. Once the change commits, the
`job_event_committed` signal carries the event to whoever subscribed in their app's
`ready()`: the API cache (its job answers are stale) and the websocket publisher. The spine
knows neither of them.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from offload.jobs.payload import job_payload
from offload.models import EventSequence, Job, JobEvent

# Sent once the transaction that recorded the event has committed, never for a rolled-back one.
# Arguments: event (the JobEvent row, its payload the job's JSON at that moment).
job_event_committed = Signal()


def next_seq() -> int:
    """Take the next event seq; the row lock is held until the caller's transaction ends."""
    connection = transaction.get_connection()
    table = connection.ops.quote_name(EventSequence._meta.db_table)
    # One round trip: the UPDATE takes the row lock and RETURNING hands back the new value.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq")  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        # The row is created by a data migration; this covers a database flushed by tests.
        EventSequence.objects.get_or_create(pk=1)
        return next_seq()
    return row[0]


def record_event(job: Job, event: str) -> JobEvent:
    """Append a JobEvent for the job's current state, inside the caller's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must run inside the transaction that changed the job")
    # Taken last, so the sequence row stays locked for as short a time as possible.
    seq = next_seq()
    record = JobEvent.objects.create(
        seq=seq, job=job, user_id=job.requested_by_id, event=event, payload=job_payload(job)
    )
    # Only committed state leaves the process: a rolled-back change is never announced.
    transaction.on_commit(lambda: _announce(record), robust=True)
    return record


def _announce(record: JobEvent) -> None:
    # Robust: a subscriber that fails is logged by Django and keeps the event from no other.
    job_event_committed.send_robust(sender=JobEvent, event=record)


def prune_events() -> int:
    """Delete events older than the retention window; run by a django-q2 schedule."""
    cutoff = timezone.now() - timedelta(hours=settings.OFFLOAD_EVENT_RETENTION_HOURS)
    deleted, _ = JobEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
