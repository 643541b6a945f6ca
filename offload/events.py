"""JobEvent: the append-only log of job state changes that clients replay."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from offload.api.caching import bump_on_commit
from offload.models import EventSequence, Job, JobEvent
from offload.notifications.publisher import publish_job_event


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
    from offload.jobs import job_payload

    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must run inside the transaction that changed the job")
    # Taken last, so the sequence row stays locked for as short a time as possible.
    seq = next_seq()
    record = JobEvent.objects.create(
        seq=seq, job=job, user_id=job.requested_by_id, event=event, payload=job_payload(job)
    )
    # Every job change passes here, queryset.update() ones included: the API's job
    # answers for this owner (and staff) are stale from this commit on.
    bump_on_commit("jobs", [job.requested_by_id])
    # Only committed state leaves the process: a rolled-back change is never announced.
    transaction.on_commit(
        lambda: publish_job_event(record.seq, record.event, record.user_id, record.payload), robust=True
    )
    return record


def prune_events() -> int:
    """Delete events older than the retention window; run by a django-q2 schedule."""
    cutoff = timezone.now() - timedelta(hours=settings.OFFLOAD_EVENT_RETENTION_HOURS)
    deleted, _ = JobEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
