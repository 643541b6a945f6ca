"""The spine's read side for the operations pages: counts, finishes, queue samples and the jobs to look at.

Each function is a bounded query (on an index, never the whole job table) answering plain rows or
Job rows; the admin turns them into its tables, charts and cells (offload/admin/panels.py). It sits
beside the rollups it reads: the charts' history is theirs, the minute in progress is read live.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q

from offload.jobs import rollups, waiting
from offload.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Job,
    JobAttempt,
    JobRollup,
    JobStatus,
    QueueSample,
    RollupSpan,
)

# The Jobs-by-kind table's window for finished jobs; the job list's "finished: in the last 24 hours" filter.
JOB_TABLE_WINDOW = timedelta(hours=24)


def finishes(now: datetime) -> dict[str, Any]:
    """Finishes of the last hour (per minute) and day (per hour), by kind and status, with time histograms.

    Rolled-up minutes and hours come from JobRollup; what finished since the last rollup is read
    live from the job table (a minute or two of finishes, on the finished_at index). Never the
    whole table: the cost stays the same as history grows.
    """
    this_minute = now.replace(second=0, microsecond=0)
    hour_start = this_minute - timedelta(minutes=59)
    day_start = this_minute.replace(minute=0) - timedelta(hours=23)
    rolled_up_to = rollups.rolled_up_to()
    mark = day_start if rolled_up_to is None or rolled_up_to < day_start else rolled_up_to
    minutes: dict[tuple[datetime, str, str], list[Any]] = {}
    hours: dict[tuple[datetime, str, str], list[Any]] = {}

    def add(into: dict, key: tuple, count: int, wait: list[int], run: list[int]) -> None:
        entry = into.setdefault(key, [0, [], []])
        entry[0] += count
        entry[1] = rollups.add_hist(entry[1], wait)
        entry[2] = rollups.add_hist(entry[2], run)

    # Hours over the day, minutes over the hour: each a range on the (span, start) index.
    for span, since, into in ((RollupSpan.HOUR, day_start, hours), (RollupSpan.MINUTE, hour_start, minutes)):
        for start, kind, status, count, wait, run in (
            JobRollup.objects.filter(span=span, start__gte=since, start__lt=mark)
            .values_list("start", "kind", "status", "finished", "wait_hist", "run_hist")
            .order_by()
        ):
            add(into, (start, kind, status), count, wait, run)
    # The hour holding the mark is rolled up only to the mark; the live read adds the rest.
    for (kind, status), rows in _by_key(rollups.finishes_between(mark, now + timedelta(seconds=1))).items():
        for minute, (count, wait, run) in rows.items():
            if minute >= hour_start:
                add(minutes, (minute, kind, status), count, wait, run)
            add(hours, (minute.replace(minute=0), kind, status), count, wait, run)
    return {
        "minutes": minutes,
        "hours": hours,
        "hour_start": hour_start,
        "day_start": day_start,
        "rolled_up_to": rolled_up_to,
    }


def _by_key(rows: list[tuple]) -> dict[tuple[str, str], dict[datetime, tuple]]:
    """Live finishes folded per (kind, status) and minute."""
    per_minute: dict[datetime, list[tuple]] = {}
    for row in rows:
        per_minute.setdefault(row[4].replace(second=0, microsecond=0), []).append(row)
    found: dict[tuple[str, str], dict[datetime, tuple]] = {}
    for minute, minute_rows in per_minute.items():
        for key, (count, wait, run) in rollups.fold(minute_rows).items():
            found.setdefault(key, {})[minute] = (count, wait, run)
    return found


def job_counts(now: datetime) -> dict[tuple[str, str], int]:
    """Jobs per (kind, status): queued and running now, and finished in the last 24 hours.

    One query on the (status, kind) and finished_at indexes, never the whole history. Finished
    jobs are job rows, once each by their status now (not the rollups' finishes, where a job
    that failed and was retried counts twice): the job list, filtered to the kind, the status
    and "finished: in the last 24 hours", shows the same jobs.
    """
    recent = Q(status__in=FINISHED_STATUSES, finished_at__gte=now - JOB_TABLE_WINDOW)
    return {
        (kind, status): n
        for kind, status, n in Job.objects.filter(Q(status__in=ACTIVE_STATUSES) | recent)
        .values_list("kind", "status")
        .annotate(n=Count("pk"))
        .order_by()
    }


def queue_samples(since: datetime) -> Iterable[tuple[datetime, str, int]]:
    """Each kind's queued count as the rollups sampled it every minute since then, oldest first."""
    return QueueSample.objects.filter(at__gte=since).values_list("at", "kind", "queued").order_by("at")


def lost_running(now: datetime, limit: int) -> list[Job]:
    """Running jobs whose worker stopped beating, the longest silent first."""
    lost_before = now - timedelta(seconds=waiting.LOST_AFTER_BEATS * waiting.heartbeat_interval())
    return list(
        Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=lost_before).order_by("heartbeat_at")[:limit]
    )


def held_back(now: datetime, scan: int) -> tuple[list[tuple[Job, str]], int, str | None]:
    """Among the `scan` oldest queued jobs, those held back and why; how many were read; the oldest's reason."""
    queued = list(Job.objects.filter(status=JobStatus.QUEUED).order_by("queued_at", "id")[:scan])
    holds = waiting.Holds(job.kind for job in queued)
    held = [(job, reason) for job in queued if (reason := waiting.waiting_reason(job, holds, now))]
    # The scan starts with the oldest queued job: its reason comes at no cost.
    return held, len(queued), waiting.waiting_reason(queued[0], holds, now) if queued else None


def oldest_queued(now: datetime) -> dict[str, Any] | None:
    """The job that has waited longest, with how long (seconds) as `age`."""
    job = (
        Job.objects.filter(status=JobStatus.QUEUED)
        .order_by("queued_at", "id")
        .values("pk", "kind", "queued_at", "attempts", "error")
        .first()
    )
    if job is not None:
        # A job waiting out a backoff is due later: it has not waited yet.
        job["age"] = max(0.0, (now - job["queued_at"]).total_seconds())
    return job


def running(limit: int) -> list[Job]:
    """The running jobs that started first, with who asked for them."""
    return list(
        Job.objects.filter(status=JobStatus.RUNNING).select_related("requested_by").order_by("started_at", "id")[:limit]
    )


def open_attempts() -> dict[tuple[str, int | None], Job]:
    """What each worker process runs now: the open attempts' jobs, by host and pid."""
    return {
        (attempt.host, attempt.pid): attempt.job
        for attempt in JobAttempt.objects.filter(finished_at__isnull=True).select_related("job")
    }
