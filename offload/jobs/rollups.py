"""Rollups of finished jobs and queue depth, for the dashboard's counters and charts.

A schedule runs roll_up() every minute: it folds the finishes of the minutes completed since
the watermark into per-minute and per-hour JobRollup rows, and samples each kind's queue. It
reads only new finishes (the finished_at index), so its cost, and the charts', does not grow
with the job table. The minute in progress is read live from the job table by the dashboard.
"""

import bisect
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from offload.jobs.kinds import names as kind_names
from offload.models import ACTIVE_STATUSES, FINISHED_STATUSES, Job, JobRollup, QueueSample, RollupSpan, RollupWatermark

# Upper bounds (seconds) of the wait and run time buckets; the last one catches the rest.
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, float("inf"))
# A minute is rolled up once it ended this long ago: a finish stamped just before the minute
# ended has committed by then.
GRACE = timedelta(seconds=5)
# On the first run (or after a long stop), history further back than this is not rolled up.
BACKFILL = timedelta(days=1)
# Rollups and samples older than this are deleted as the next ones are written.
KEEP = timedelta(days=2)


def bucket_of(seconds: float) -> int:
    """The index in BUCKETS of the first bound at or above seconds."""
    return bisect.bisect_left(BUCKETS, max(0.0, seconds))


def percentile(hist: list[int], fraction: float) -> float | None:
    """The upper bound of the bucket holding that fraction of the counts (None without counts)."""
    total = sum(hist)
    if not total:
        return None
    wanted = fraction * total
    seen = 0
    for index, n in enumerate(hist):
        seen += n
        if seen >= wanted:
            return BUCKETS[index]
    return BUCKETS[-1]


def add_hist(into: list[int], other: list[int]) -> list[int]:
    """Two histograms' sum (either may be shorter: an empty list counts as zeros)."""
    size = max(len(into), len(other), len(BUCKETS))
    return [(into[i] if i < len(into) else 0) + (other[i] if i < len(other) else 0) for i in range(size)]


def fold(rows: list[tuple[str, str, datetime | None, datetime | None, datetime | None]]) -> dict:
    """(kind, status, queued_at, started_at, finished_at) rows → {(kind, status): [count, wait_hist, run_hist]}."""
    found: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, [0] * len(BUCKETS), [0] * len(BUCKETS)])
    for kind, status, queued_at, started_at, finished_at in rows:
        entry = found[(kind, status)]
        entry[0] += 1
        if started_at is not None and queued_at is not None and started_at >= queued_at:
            entry[1][bucket_of((started_at - queued_at).total_seconds())] += 1
        if started_at is not None and finished_at is not None and finished_at >= started_at:
            entry[2][bucket_of((finished_at - started_at).total_seconds())] += 1
    return found


def finishes_between(start: datetime, end: datetime) -> list[tuple]:
    """The finishes with start <= finished_at < end, as fold() takes them (the finished_at index)."""
    return list(
        Job.objects.filter(finished_at__gte=start, finished_at__lt=end, status__in=FINISHED_STATUSES)
        .values_list("kind", "status", "queued_at", "started_at", "finished_at")
        .order_by()
    )


def _merge(span: str, start: datetime, folded: dict) -> None:
    for (kind, status), (count, wait, run) in folded.items():
        row, created = JobRollup.objects.select_for_update().get_or_create(
            span=span,
            start=start,
            kind=kind,
            status=status,
            defaults={"finished": count, "wait_hist": wait, "run_hist": run},
        )
        if not created:
            row.finished += count
            row.wait_hist = add_hist(row.wait_hist, wait)
            row.run_hist = add_hist(row.run_hist, run)
            row.save(update_fields=["finished", "wait_hist", "run_hist"])


def sample_queues(at: datetime) -> None:
    """Each kind's queued and running jobs now, as the sample of minute `at` (the (status, kind) index).

    Every registered kind gets a row, an empty queue too: the queue-depth charts read a missing
    row as a minute not sampled, so without the zero a queue that emptied would be drawn as a
    line sloping down to the next sample instead of dropping to 0.
    """
    counts = {
        row["kind"]: row
        for row in Job.objects.filter(status__in=ACTIVE_STATUSES)
        .values("kind")
        .annotate(queued=Count("pk", filter=Q(status="queued")), running=Count("pk", filter=Q(status="running")))
        .order_by()
    }
    empty = {"queued": 0, "running": 0}
    QueueSample.objects.bulk_create(
        [
            QueueSample(at=at, kind=kind, **{field: counts.get(kind, empty)[field] for field in empty})
            for kind in sorted(set(kind_names()) | set(counts))
        ],
        # A minute sampled again (the schedule ran twice in it) keeps the later count.
        update_conflicts=True,
        unique_fields=["at", "kind"],
        update_fields=["queued", "running"],
    )


def roll_up(now: datetime | None = None) -> int:
    """Fold the minutes completed since the watermark into the rollups; answer how many minutes."""
    now = now or timezone.now()
    last_complete = (now - GRACE).replace(second=0, microsecond=0)
    with transaction.atomic():
        mark, _ = RollupWatermark.objects.select_for_update().get_or_create(pk=1)
        start = mark.rolled_up_to or (last_complete - BACKFILL)
        start = max(start, last_complete - BACKFILL)
        if start >= last_complete:
            sample_queues(last_complete)
            return 0
        by_minute: dict[datetime, list[tuple]] = defaultdict(list)
        for row in finishes_between(start, last_complete):
            by_minute[row[4].replace(second=0, microsecond=0)].append(row)
        by_hour: dict[datetime, list[tuple]] = defaultdict(list)
        for minute, rows in sorted(by_minute.items()):
            _merge(RollupSpan.MINUTE, minute, fold(rows))
            by_hour[minute.replace(minute=0)].extend(rows)
        for hour, rows in by_hour.items():
            _merge(RollupSpan.HOUR, hour, fold(rows))
        mark.rolled_up_to = last_complete
        mark.save(update_fields=["rolled_up_to"])
        sample_queues(last_complete)
        JobRollup.objects.filter(start__lt=now - KEEP).delete()
        QueueSample.objects.filter(at__lt=now - KEEP).delete()
    return int((last_complete - start).total_seconds() // 60)


def rolled_up_to() -> datetime | None:
    """Where the rollups end: finishes from here on are read live from the job table."""
    return RollupWatermark.objects.filter(pk=1).values_list("rolled_up_to", flat=True).first()
