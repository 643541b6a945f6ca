"""Job rows written directly, as the spine leaves them, for pages that only read them."""

import uuid
from datetime import timedelta

from django.utils import timezone

from offload.models import Job, JobStatus


def make_job(kind: str = "system.noop", status: str = JobStatus.SUCCEEDED, **fields) -> Job:
    """A job row as the spine leaves it, written directly (no queue row, no worker)."""
    now = timezone.now()
    defaults = {
        "params_hash": uuid.uuid4().hex,
        "created_at": now - timedelta(minutes=2),
        "started_at": now - timedelta(minutes=1) if status != JobStatus.QUEUED else None,
        "finished_at": now if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED) else None,
        "attempts": 0 if status == JobStatus.QUEUED else 1,
    }
    fields = {**defaults, **fields}
    # Queued when it was made, unless the test says otherwise.
    fields.setdefault("queued_at", fields["created_at"])
    return Job.objects.create(kind=kind, status=status, **fields)
