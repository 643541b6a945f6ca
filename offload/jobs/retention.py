"""Finished jobs leave the table after their retention: a schedule prunes them in batches.

Succeeded and cancelled jobs are kept OFFLOAD_JOB_RETENTION_DAYS, failed ones (what an
operator investigates) OFFLOAD_FAILED_JOB_RETENTION_DAYS; 0 keeps them for ever. Each batch is
its own transaction, so a large backlog never holds long locks. Their events go with them; the
charts keep their counts in the rollups.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from offload.models import Job, JobStatus

# One run deletes at most this many batches; the next run (hourly) takes the rest.
MAX_BATCHES = 100


def policies() -> list[tuple[tuple[str, ...], int]]:
    """(statuses, days kept) for each retention rule, from the settings."""
    return [
        ((JobStatus.SUCCEEDED, JobStatus.CANCELLED), settings.OFFLOAD_JOB_RETENTION_DAYS),
        ((JobStatus.FAILED,), settings.OFFLOAD_FAILED_JOB_RETENTION_DAYS),
    ]


def prune_jobs(now: datetime | None = None) -> int:
    """Delete finished jobs past their retention, oldest first, a batch at a time; answer how many."""
    now = now or timezone.now()
    deleted = 0
    for statuses, days in policies():
        if not days:
            continue
        cutoff = now - timedelta(days=days)
        for _ in range(MAX_BATCHES):
            # The (status, finished_at) index serves this: the oldest finishes of these statuses.
            batch = list(
                Job.objects.filter(status__in=statuses, finished_at__lt=cutoff)
                .order_by("finished_at")
                .values_list("pk", flat=True)[: settings.OFFLOAD_JOB_PRUNE_BATCH]
            )
            if not batch:
                break
            with transaction.atomic():
                Job.objects.filter(pk__in=batch).delete()
            deleted += len(batch)
    return deleted
