"""The admin's operations pages: the dashboard and the failure groups.

The dashboard is one snapshot of a few queries and service calls, kept in the cache for
OFFLOAD_DASHBOARD_CACHE_SECONDS, so a room full of operators reloading it costs the
database no more than one of them. Progress bars on it follow the websocket (live.js).
"""

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.cache import cache
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe
from django.views.generic import RedirectView
from redis.exceptions import RedisError

from offload.admin import charts, failures, readable
from offload.admin.widgets import heartbeat_cell
from offload.jobs import kinds as job_kinds
from offload.jobs import lane_of, queue_rows, quiet, rollups, waiting
from offload.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Job,
    JobAttempt,
    JobEvent,
    JobRollup,
    JobStatus,
    QueueSample,
    RollupSpan,
)

log = logging.getLogger(__name__)

CACHE_KEY = "ops-dashboard:v1"
RUNNING_SHOWN = 20
GROUPS_SHOWN = 5
# Jobs a confirmation page names; the count says how many more.
PREVIEW_ROWS = 20


# --- Panels other apps add ---------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    name: str
    # Rendered with `panel` set to what compute() answered.
    template: str
    compute: Callable[[], dict[str, Any]]


_panels: list[Panel] = []


def register_panel(name: str, template: str, compute: Callable[[], dict[str, Any]]) -> None:
    """Show a panel of another app's state on the dashboard (from that app's ready())."""
    _panels[:] = [panel for panel in _panels if panel.name != name]
    _panels.append(Panel(name, template, compute))


# --- The snapshot -----------------------------------------------------------------


def _finishes(now: datetime) -> dict[str, Any]:
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


# The Jobs-by-kind table's window for finished jobs; the job list's "finished: in the last 24 hours" filter.
JOB_TABLE_WINDOW = timedelta(hours=24)


def _job_counts(now: datetime) -> dict[tuple[str, str], int]:
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


def _job_table(counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Jobs per kind and status, with the totals (from _job_counts)."""
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


def _throughput(finishes: dict[str, Any]) -> dict[str, Any]:
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


def _latency(finishes: dict[str, Any]) -> dict[str, Any]:
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


def _queue_depth(now: datetime, active: dict[tuple[str, str], int]) -> dict[str, Any]:
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
    for at, kind, queued in (
        QueueSample.objects.filter(at__gte=day_start).values_list("at", "kind", "queued").order_by("at")
    ):
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


def _retention(finishes: dict[str, Any]) -> dict[str, Any]:
    """The retention policy, as the dashboard states it."""
    return {
        "finished_days": settings.OFFLOAD_JOB_RETENTION_DAYS,
        "failed_days": settings.OFFLOAD_FAILED_JOB_RETENTION_DAYS,
        "rolled_up_to": finishes["rolled_up_to"],
    }


# The dashboard looks for held jobs among this many of the oldest queued ones.
ATTENTION_SCAN = 1000
ATTENTION_SHOWN = 10


def _attention(now: datetime) -> dict[str, Any]:
    """What an operator must see first: running jobs whose worker is lost, and queued jobs held back (and why)."""
    lost_before = now - timedelta(seconds=waiting.LOST_AFTER_BEATS * waiting.heartbeat_interval())
    lost = readable.name_targets(
        Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=lost_before).order_by("heartbeat_at")[
            :ATTENTION_SHOWN
        ]
    )
    queued = list(Job.objects.filter(status=JobStatus.QUEUED).order_by("queued_at", "id")[:ATTENTION_SCAN])
    holds = waiting.Holds(job.kind for job in queued)
    held = [(job, reason) for job in queued if (reason := waiting.waiting_reason(job, holds, now))]
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
        "scanned": len(queued),
        # The oldest queued job's reason, for the Queue panel (the scan starts with it).
        "oldest_reason": waiting.waiting_reason(queued[0], holds, now) if queued else None,
    }


def _oldest_queued(now: datetime) -> dict[str, Any] | None:
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


def _running() -> list[dict[str, Any]]:
    jobs = (
        Job.objects.filter(status=JobStatus.RUNNING)
        .select_related("requested_by")
        .order_by("started_at", "id")[:RUNNING_SHOWN]
    )
    jobs = readable.name_targets(jobs)
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


def _failure_groups() -> dict[str, Any]:
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


def _clusters() -> dict[str, Any]:
    """django-q2's own view of its clusters (kept in the cache by each cluster's sentinel)."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.status import Stat

    broker = get_broker()
    stats = Stat.get_all(broker)
    lane_of_queue = {queue: lane for lane, queue in settings.OFFLOAD_LANES.items()}
    # What each worker process runs now: the open attempts, named by host and pid.
    running = {
        (attempt.host, attempt.pid): attempt.job
        for attempt in JobAttempt.objects.filter(finished_at__isnull=True).select_related("job")
    }
    clusters = []
    for stat in stats:
        queue = lane_of(stat, broker, default=settings.Q_CLUSTER["name"])
        workers = []
        for pid in stat.workers:
            job = running.get((stat.host, pid))
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


def _redis() -> dict[str, Any]:
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


def forget_snapshot() -> None:
    """Drop the cached snapshot: an operator's change shows on their next look, not after the cache's seconds."""
    cache.delete(CACHE_KEY)


def latest_seq() -> int:
    """The newest event's seq: where a snapshot taken now stands in the event stream."""
    return JobEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def snapshot(min_seq: int = 0) -> dict[str, Any]:
    """Everything the dashboard shows, at most OFFLOAD_DASHBOARD_CACHE_SECONDS old.

    A page that has seen events up to min_seq gets a snapshot taken after them: a cached one
    from before is taken again (once; the next reader at that seq finds the new one).
    """
    data = cache.get(CACHE_KEY)
    if data is not None and data["seq"] < min_seq and latest_seq() > data["seq"]:
        data = None
    if data is None:
        # Read before the queries: live.js resumes from it, so what changes while they run is replayed.
        seq = latest_seq()
        now = timezone.now()
        data = {
            "seq": seq,
            "generated_at": now,
        }
        finishes = _finishes(now)
        active = _job_counts(now)
        data.update(
            jobs=_job_table(active),
            throughput=_throughput(finishes),
            latency=_latency(finishes),
            queue_depth=_queue_depth(now, active),
            retention=_retention(finishes),
            oldest_queued=_oldest_queued(now),
            attention=_attention(now),
            running=_running(),
            failures=_failure_groups(),
            workers=_clusters(),
            redis=_redis(),
            queues=queue_rows(now),
        )
        data["panels"] = []
        for panel in _panels:
            data[panel.name] = panel.compute()
            data["panels"].append({"name": panel.name, "template": panel.template, "data": data[panel.name]})
        if settings.OFFLOAD_DASHBOARD_CACHE_SECONDS:
            cache.set(CACHE_KEY, data, settings.OFFLOAD_DASHBOARD_CACHE_SECONDS)
    return data


# --- Views ------------------------------------------------------------------------


def _context(site: AdminSite, request: HttpRequest, title: str) -> dict[str, Any]:
    return {**site.each_context(request), "title": title}


def dashboard_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """The operations dashboard (staff with permission to view jobs)."""
    if not request.user.has_perm("offload.view_job"):
        return HttpResponseForbidden("You may not view jobs.")
    try:
        min_seq = max(0, int(request.GET.get("seq", 0)))
    except ValueError:
        min_seq = 0
    # ?fragment=1 is the page's live part alone, which live.js swaps in after events.
    template = "admin/offload/dashboard_live.html" if request.GET.get("fragment") else "admin/offload/dashboard.html"
    return TemplateResponse(
        request, template, {**_context(site, request, "Operations"), "ops": snapshot(min_seq), "now": timezone.now()}
    )


def failures_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """Failed jobs grouped by fingerprint, each group with a retry button."""
    if not request.user.has_perm("offload.view_job"):
        return HttpResponseForbidden("You may not view jobs.")
    groups = failures.failure_groups()
    failures.name_samples(groups)
    context = {
        **_context(site, request, "Failed jobs by cause"),
        "groups": groups,
        "failed_jobs": sum(g.count for g in groups),
        "scan_limit": failures.SCAN_LIMIT,
        "retry_limit": failures.RETRY_LIMIT,
        "all_failed": failures.ALL_FAILED,
        "can_retry": request.user.has_perm("offload.change_job"),
    }
    return TemplateResponse(request, "admin/offload/failures.html", context)


def retry_group_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """Retry the failed jobs of one group; every retry is written to the admin log."""
    if not request.user.has_perm("offload.change_job"):
        return HttpResponseForbidden("You may not retry jobs.")
    key = request.POST.get("fingerprint", "")
    if request.POST.get("post") != "yes":
        return _confirm_retry_group(site, request, key)
    outcome = failures.retry_group(request.user, key)
    if outcome.retried:
        messages.success(request, f"{outcome.retried} job{'s' if outcome.retried != 1 else ''} queued again.")
    else:
        messages.warning(request, "No job of that group could be retried: it may have been retried already.")
    if outcome.remaining:
        messages.info(request, f"{outcome.remaining} more job(s) in the group: retry it again for the next batch.")
    for reason in outcome.refused[:10]:
        messages.warning(request, reason)
    cache.delete(CACHE_KEY)
    return HttpResponseRedirect(reverse("admin:offload_failures"))


def _confirm_retry_group(site: AdminSite, request: HttpRequest, key: str) -> HttpResponse:
    """How many jobs of the group a retry queues again, and the first of them by name."""
    chosen, total = failures.chosen_for_retry(key)
    if not chosen:
        messages.warning(request, "No failed job is left there: it may have been retried already.")
        return HttpResponseRedirect(reverse("admin:offload_failures"))
    preview = list(Job.objects.filter(pk__in=chosen[:PREVIEW_ROWS]).order_by("-id"))
    if key == failures.ALL_FAILED:
        question = "Queue every failed job again, whatever its cause?"
    else:
        group = next(g for g in failures.failure_groups() if g.fingerprint == key)
        question = f"Queue these failed {group.kind} jobs again? Their cause: {group.exception}: {group.message}"
    if total > failures.RETRY_LIMIT:
        question += f" (the first {failures.RETRY_LIMIT} of {total}; retry again for the next batch)"
    context = {
        **_context(site, request, f"Retry {len(chosen)} job{'s' if len(chosen) != 1 else ''}?"),
        "question": question,
        "count": len(chosen),
        "more": max(0, len(chosen) - len(preview)),
        "button": "Yes, retry them",
        "back": reverse("admin:offload_failures"),
        "back_label": "Failures",
        "jobs": readable.name_targets(preview),
        "hidden": [("fingerprint", key), ("post", "yes")],
        "form_action": request.path,
    }
    return TemplateResponse(request, "admin/offload/confirm.html", context)


def urls(site: AdminSite) -> list[URLPattern]:
    """The pages above, as admin views (login, staff and CSRF checks included)."""

    def view(fn, *, post_only: bool = False):
        def bound(request: HttpRequest) -> HttpResponse:
            return fn(site, request)

        # The dashboard's snapshot carries its own seq; the site need not read one for it.
        bound.offload_own_seq = fn is dashboard_view
        # A page that only shows answers 405 to a POST: what changes state is a POST-only view with its permission.
        return site.admin_view(require_POST(bound) if post_only else require_safe(bound))

    return [
        # The section's own address, a prefix of its pages' (the admin highlights the section by it).
        path(
            "operations/",
            require_safe(RedirectView.as_view(pattern_name="admin:offload_operations")),
            name="offload_section",
        ),
        path("operations/dashboard/", view(dashboard_view), name="offload_operations"),
        path("operations/failures/", view(failures_view), name="offload_failures"),
        path("operations/failures/retry/", view(retry_group_view, post_only=True), name="offload_failures_retry"),
    ]


def app_list_entry(site: AdminSite) -> dict[str, Any]:
    """An "Operations" section for the admin's app list, linking the pages above."""
    pages = [
        {"name": name, "object_name": url_name, "admin_url": reverse(f"admin:{url_name}", current_app=site.name)}
        for name, url_name in (
            ("Dashboard", "offload_operations"),
            ("Queues", "offload_queues"),
            ("Failures", "offload_failures"),
            ("Schedules", "offload_schedules"),
        )
    ]
    models = [{**page, "add_url": None, "view_only": True, "perms": {"view": True}} for page in pages]
    return {
        "name": "Operations",
        "app_label": "operations",
        "app_url": reverse("admin:offload_section", current_app=site.name),
        "has_module_perms": True,
        "models": models,
    }
