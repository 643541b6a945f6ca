"""The queue's figures per kind, and when it empties at the current rate (the drain forecast)."""

import math
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Min, Q
from django.utils import timezone

from offload.jobs.kinds import all_kinds
from offload.models import ACTIVE_STATUSES, FINISHED_STATUSES, Job, JobStatus, QueueControl

# The finish rate is measured over this window.
RATE_WINDOW = timedelta(minutes=15)
# Below this many finishes in the window, the forecast uses run times (drain_seconds).
FEW_FINISHES = 10
# The mean run time is taken over the successes of this window.
RUN_TIME_WINDOW = timedelta(hours=1)


def drain_seconds(
    queued: int,
    running: int,
    finished: int,
    paused: bool,
    run_seconds: float | None = None,
    concurrency: int | None = None,
) -> float | None:
    """Seconds until the kind's queue is empty; None when it is not draining.

    With many finishes in the window, at the window's finish rate. With few, that rate says
    little (three 5 s jobs after one finish would read as 45 minutes), so from the recent mean
    run time instead: a capped kind runs `concurrency` jobs at a time, another as many as run
    now (one when none does: how many workers its lane has is not known here).
    """
    remaining = queued + running
    if remaining == 0:
        return 0.0
    if paused and queued:
        return None  # nothing will start
    if finished < FEW_FINISHES and run_seconds is not None:
        at_once = min(concurrency, remaining) if concurrency else max(running, 1)
        return round(math.ceil(remaining / at_once) * run_seconds, 1)
    if finished == 0:
        return None  # no rate to extrapolate from
    return round(remaining * RATE_WINDOW.total_seconds() / finished, 1)


def queue_rows(now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per registered kind: lane, holds, queued, running, oldest wait, recent finishes, drain forecast."""
    now = now or timezone.now()
    since = now - RATE_WINDOW
    queued_q, running_q = Q(status=JobStatus.QUEUED), Q(status=JobStatus.RUNNING)
    finished_q = Q(status__in=FINISHED_STATUSES, finished_at__gte=since)
    ran_q = Q(status=JobStatus.SUCCEEDED, finished_at__gte=now - RUN_TIME_WINDOW, started_at__isnull=False)
    ran = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    # One grouped query over the active rows and the window's finishes (the (status, kind)
    # and finished_at indexes serve it).
    figures = {
        kind: (queued, running, oldest, finished, run)
        for kind, queued, running, oldest, finished, run in Job.objects.filter(
            Q(status__in=ACTIVE_STATUSES) | finished_q | ran_q
        )
        .values_list("kind")
        .annotate(
            queued=Count("pk", filter=queued_q),
            running=Count("pk", filter=running_q),
            oldest=Min("queued_at", filter=queued_q),
            finished=Count("pk", filter=finished_q),
            run=Avg(ran, filter=ran_q),
        )
        .order_by()
    }
    controls = {c.kind: c for c in QueueControl.objects.all()}
    rows = []
    for kind in sorted(all_kinds(), key=lambda k: k.name):
        control = controls.get(kind.name) or QueueControl(kind=kind.name)
        queued, running, oldest, done, run = figures.get(kind.name, (0, 0, None, 0, None))
        rows.append(
            {
                "kind": kind.name,
                "lane": kind.lane,
                "paused": control.paused,
                "concurrency": control.concurrency,
                "queued": queued,
                "running": running,
                # A job waiting out a backoff is not late yet: its wait counts from when it is due.
                "oldest_queued_seconds": round(max(0.0, (now - oldest).total_seconds()), 1) if oldest else None,
                "finished_last_15m": done,
                "drain_seconds": drain_seconds(
                    queued,
                    running,
                    done,
                    control.paused,
                    run_seconds=run.total_seconds() if run is not None else None,
                    concurrency=control.concurrency,
                ),
            }
        )
    return rows


def queue_row(kind: str) -> dict[str, Any]:
    """The row of one kind."""
    return next(row for row in queue_rows() if row["kind"] == kind)
