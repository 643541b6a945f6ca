"""The dashboard's own panels: each function answers one part of its snapshot (offload/admin/dashboard.py).

The figures come from the spine's read side (offload.jobs.overview) and from the services each
panel reports on (django-q2's cluster stats, Redis); here they become the tables, SVG charts and
job cells the page shows. It sits in the admin, not beside the rollups, because what it answers is
the page's: HTML cells (badges.py), charts (charts.py), targets by name (readable.py) and the
failure groups (failures.py) are the admin's.
"""

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from offload.admin import charts, failures, readable
from offload.admin.badges import heartbeat_cell
from offload.jobs import kinds as job_kinds
from offload.jobs import lane_of, overview, quiet, rollups
from offload.models import JobStatus

log = logging.getLogger(__name__)

RUNNING_SHOWN = 20
GROUPS_SHOWN = 5
# The dashboard looks for held jobs among this many of the oldest queued ones.
ATTENTION_SCAN = 1000
ATTENTION_SHOWN = 10


def job_table(counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Jobs per kind and status, with the totals (from overview.job_counts)."""
    statuses = list(JobStatus.values)
    kinds = sorted(set(job_kinds.names()) | {kind for kind, _ in counts})
    rows = [
        {
            "kind": kind,
            "cells": [(status, counts.get((kind, status), 0)) for status in statuses],
            "total": sum(counts.get((kind, status), 0) for status in statuses),
        }
        for kind in kinds
    ]
    totals = [(status, sum(n for (_, s), n in counts.items() if s == status)) for status in statuses]
    return {"statuses": statuses, "rows": rows, "totals": totals, "total": sum(counts.values())}


def _buckets(data: dict, starts: list[datetime], kind: str | None = None) -> list[tuple[datetime, dict[str, int]]]:
    found: dict[datetime, dict[str, int]] = {start: {} for start in starts}
    for (start, k, status), (n, _, _) in data.items():
        if start in found and (kind is None or k == kind):
            found[start][status] = found[start].get(status, 0) + n
    return list(found.items())


def throughput(finishes: dict[str, Any]) -> dict[str, Any]:
    """Jobs finished per minute over the last hour and per hour over the last day, by status and by kind."""
    hour_start, day_start = finishes["hour_start"], finishes["day_start"]
    windows = {
        "hour": (
            finishes["minutes"],
            [hour_start + timedelta(minutes=i) for i in range(60)],
            timedelta(minutes=1),
            "%H:%M",
            10,
        ),
        "day": (finishes["hours"], [day_start + timedelta(hours=i) for i in range(24)], timedelta(hours=1), "%H:00", 3),
    }
    found = {}
    for name, (data, starts, step, label, every) in windows.items():
        chart = charts.stacked_bars(_buckets(data, starts), step, label, every)
        chart["svg"] = charts.bars_svg(chart, f"Jobs finished over the last {name}, stacked by status")
        chart["by_kind"] = []
        for kind in sorted({k for (_, k, _) in data}):
            of_kind = charts.stacked_bars(_buckets(data, starts, kind), step, label, every)
            svg = charts.bars_svg(of_kind, f"{kind} jobs finished over the last {name}", small=True)
            chart["by_kind"].append({"kind": kind, "finished": of_kind["finished"], "svg": svg})
        found[name] = chart
    return found


def latency(finishes: dict[str, Any]) -> dict[str, Any]:
    """Wait and run time p50/p95 per kind, over the last hour and the last day."""
    found = {}
    for window, data in (("hour", finishes["minutes"]), ("day", finishes["hours"])):
        by_kind: dict[str, list[Any]] = {}
        for (_, kind, _), (n, wait, run) in data.items():
            entry = by_kind.setdefault(kind, [0, [], []])
            entry[0] += n
            entry[1] = rollups.add_hist(entry[1], wait)
            entry[2] = rollups.add_hist(entry[2], run)
        found[window] = charts.latency_rows(
            {
                kind: {
                    "count": n,
                    "wait_p50": rollups.percentile(wait, 0.5),
                    "wait_p95": rollups.percentile(wait, 0.95),
                    "run_p50": rollups.percentile(run, 0.5),
                    "run_p95": rollups.percentile(run, 0.95),
                }
                for kind, (n, wait, run) in by_kind.items()
            }
        )
    return found


# The day chart's step: each point is the most jobs queued at any sampled minute of its 15 minutes.
DEPTH_DAY_STEP = timedelta(minutes=15)


def queue_depth(now: datetime, active: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Queued jobs per kind over the last hour and day, from the per-minute samples, ending with the count now.

    One definition for both charts: the hour chart draws each minute's sample, the day chart
    the highest sample of each 15 minutes (a burst between two quarter-hours shows in both),
    and both end with the live count, the Jobs by kind table's "queued". Both draw the same
    kinds in the same colours.
    """
    this_minute = now.replace(second=0, microsecond=0)
    hour_start = this_minute - timedelta(hours=1)
    day_start = _quarter_of(this_minute - timedelta(days=1))
    samples: dict[str, dict[datetime, int]] = {}
    for at, kind, queued in overview.queue_samples(day_start):
        samples.setdefault(kind, {})[at] = queued
    queued_now = {kind: n for (kind, status), n in active.items() if status == JobStatus.QUEUED}
    shown = {kind for kind, points in samples.items() if any(points.values())} | {k for k, n in queued_now.items() if n}
    hour: dict[str, list[tuple[datetime, int]]] = {}
    day: dict[str, list[tuple[datetime, int]]] = {}
    for kind in shown:
        points = samples.get(kind, {})
        hour[kind] = [(at, n) for at, n in points.items() if at >= hour_start]
        quarters: dict[datetime, int] = {}
        for at, n in points.items():
            quarter = _quarter_of(at)
            quarters[quarter] = max(n, quarters.get(quarter, 0))
        day[kind] = sorted(quarters.items())
        # The line ends at the present, not at the last sample.
        for series in (hour[kind], day[kind]):
            series.append((now, queued_now.get(kind, 0)))
    found = {
        "hour": charts.lines(hour, hour_start, now, timedelta(minutes=10), "%H:%M"),
        "day": charts.lines(day, day_start, now, timedelta(hours=3), "%H:00", step=DEPTH_DAY_STEP),
    }
    for name, chart in found.items():
        chart["svg"] = charts.lines_svg(chart, f"Queued jobs by kind over the last {name}")
    return found


def _quarter_of(at: datetime) -> datetime:
    """The start of the 15 minutes holding `at` (:00, :15, :30 or :45)."""
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def retention(finishes: dict[str, Any]) -> dict[str, Any]:
    """The retention policy, as the dashboard states it."""
    return {
        "finished_days": settings.OFFLOAD_JOB_RETENTION_DAYS,
        "failed_days": settings.OFFLOAD_FAILED_JOB_RETENTION_DAYS,
        "rolled_up_to": finishes["rolled_up_to"],
    }


def attention(now: datetime) -> dict[str, Any]:
    """What an operator must see first: running jobs whose worker is lost, and queued jobs held back (and why)."""
    lost = readable.name_targets(overview.lost_running(now, ATTENTION_SHOWN))
    held, scanned, oldest_reason = overview.held_back(now, ATTENTION_SCAN)
    # "paused", "capped" or "backoff": the reason's first word.
    counts = Counter(reason.split(":")[0].split(" ")[0] for _, reason in held)
    return {
        "lost": [
            {
                "pk": job.pk,
                "kind": job.kind,
                "target_html": job.target_html if job.target_type else "",
                "heartbeat_html": heartbeat_cell(job, now),
            }
            for job in lost
        ],
        "held": [{"pk": job.pk, "kind": job.kind, "reason": reason} for job, reason in held[:ATTENTION_SHOWN]],
        "held_counts": sorted(counts.items()),
        "held_total": len(held),
        "scanned": scanned,
        # The oldest queued job's reason, for the Queue panel (the scan starts with it).
        "oldest_reason": oldest_reason,
    }


def running_jobs() -> list[dict[str, Any]]:
    """The running jobs that started first, each with its target, heartbeat and progress."""
    jobs = readable.name_targets(overview.running(RUNNING_SHOWN))
    return [
        {
            "pk": job.pk,
            "kind": job.kind,
            "target": job.target,
            "target_html": job.target_html,
            "heartbeat_html": heartbeat_cell(job),
            "progress": job.progress,
            "started_at": job.started_at,
            "attempts": job.attempts,
            "requested_by": job.requested_by.get_username() if job.requested_by else "",
            "cancel_requested": job.cancel_requested_at is not None,
        }
        for job in jobs
    ]


def failure_groups() -> dict[str, Any]:
    """How many failure groups and failed jobs there are, and the biggest groups."""
    groups = failures.failure_groups()
    return {
        "count": len(groups),
        "jobs": sum(g.count for g in groups),
        "top": [
            {
                "fingerprint": g.fingerprint,
                "kind": g.kind,
                "exception": g.exception,
                "message": g.message,
                "count": g.count,
            }
            for g in groups[:GROUPS_SHOWN]
        ],
    }


def cluster_stats() -> dict[str, Any]:
    """django-q2's own view of its clusters (kept in the cache by each cluster's sentinel)."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.status import Stat

    broker = get_broker()
    stats = Stat.get_all(broker)
    lane_of_queue = {queue: lane for lane, queue in settings.OFFLOAD_LANES.items()}
    open_attempts = overview.open_attempts()
    clusters = []
    for stat in stats:
        queue = lane_of(stat, broker, default=settings.Q_CLUSTER["name"])
        workers = []
        for pid in stat.workers:
            job = open_attempts.get((stat.host, pid))
            workers.append({"pid": pid, "job": job, "heartbeat_html": heartbeat_cell(job) if job else ""})
        clusters.append(
            {
                "id": stat.cluster_id,
                "lane": lane_of_queue.get(queue, queue),
                "host": stat.host,
                "pid": stat.pid,
                # The quiet flag's name (offload.jobs.quiet): the pusher's parent.
                "sentinel": stat.sentinel,
                "status": stat.status,
                "workers": len(stat.workers),
                "worker_rows": workers,
                "started_at": stat.tob,
                "reincarnations": stat.reincarnations,
                "task_q_size": stat.task_q_size,
                "reported_at": stat.timestamp,
            }
        )
    quiet_ones = quiet.quieted([(c["host"], c["sentinel"]) for c in clusters])
    for c in clusters:
        c["quiet"] = (c["host"], c["sentinel"]) in quiet_ones
    clusters.sort(key=lambda c: (c["lane"], c["host"], c["pid"]))
    live = {c["lane"] for c in clusters if c["status"] != Conf.STOPPED}
    awake = {c["lane"] for c in clusters if c["status"] != Conf.STOPPED and not c["quiet"]}
    return {
        "clusters": clusters,
        "workers": sum(c["workers"] for c in clusters),
        # A lane with no cluster reporting: its jobs wait for ever.
        "dead_lanes": [lane for lane in settings.OFFLOAD_LANES if lane not in live],
        # A lane whose every cluster was quieted: its new jobs wait until one is woken.
        "quiet_lanes": sorted(live - awake),
    }


def redis_info() -> dict[str, Any]:
    from django_redis import get_redis_connection

    try:
        info = get_redis_connection("default").info()
    except (RedisError, OSError) as exc:
        log.warning("dashboard: Redis did not answer: %s", exc)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "ok": True,
        "version": info.get("redis_version"),
        "uptime": info.get("uptime_in_seconds"),
        "clients": info.get("connected_clients"),
        "memory": info.get("used_memory_human"),
        "peak_memory": info.get("used_memory_peak_human"),
    }
