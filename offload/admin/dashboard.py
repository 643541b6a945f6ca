"""The admin's operations pages: the dashboard and the failure groups.

The dashboard is one snapshot of a few queries and service calls, kept in the cache for
OFFLOAD_DASHBOARD_CACHE_SECONDS, so a room full of operators reloading it costs the
database no more than one of them. Progress bars on it follow the websocket (live.js).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.cache import cache
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django.views.generic import RedirectView
from redis.exceptions import RedisError

from offload.admin import failures
from offload.jobs import kinds as job_kinds
from offload.models import Job, JobEvent, JobStatus

log = logging.getLogger(__name__)

CACHE_KEY = "ops-dashboard:v1"
RUNNING_SHOWN = 20
GROUPS_SHOWN = 5
# Jobs a confirmation page names; the count says how many more.
PREVIEW_ROWS = 20
CHART_WIDTH, CHART_HEIGHT = 600, 120
# The statuses a throughput bar stacks, bottom up, with their colours.
CHART_STATUSES = (("succeeded", "#417690"), ("failed", "#ba2121"), ("cancelled", "#999999"))


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


def _job_table() -> dict[str, Any]:
    """Jobs per kind and status, with totals; one grouped query on the (status, kind) index."""
    counts = {
        (kind, status): n
        for kind, status, n in Job.objects.values_list("kind", "status").annotate(n=Count("pk")).order_by()
    }
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


def _bars(buckets: list[tuple[datetime, dict[str, int]]], label_format: str) -> dict[str, Any]:
    """An SVG-ready stacked bar chart: geometry computed here, drawn by the template."""
    peak = max((sum(counts.values()) for _, counts in buckets), default=0) or 1
    width = CHART_WIDTH / max(1, len(buckets))
    bars = []
    for index, (start, counts) in enumerate(buckets):
        segments, y = [], float(CHART_HEIGHT)
        for status, colour in CHART_STATUSES:
            height = CHART_HEIGHT * counts.get(status, 0) / peak
            if height:
                y -= height
                segments.append({"y": round(y, 2), "height": round(height, 2), "colour": colour})
        summary = ", ".join(f"{counts.get(s, 0)} {s}" for s, _ in CHART_STATUSES)
        bars.append(
            {
                "x": round(index * width, 2),
                "width": round(max(1.0, width - 1), 2),
                "segments": segments,
                "title": f"{start.strftime(label_format)}: {summary}",
            }
        )
    totals = {s: sum(c.get(s, 0) for _, c in buckets) for s, _ in CHART_STATUSES}
    decided = totals["succeeded"] + totals["failed"]
    return {
        "bars": bars,
        "peak": peak,
        "totals": totals,
        "finished": sum(totals.values()),
        # Failures among jobs that ran to an outcome; a cancel is the operator's choice.
        "failure_rate": (100.0 * totals["failed"] / decided) if decided else None,
        "first": buckets[0][0] if buckets else None,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "colours": CHART_STATUSES,
    }


def _throughput(now: datetime) -> dict[str, Any]:
    """Jobs finished per minute over the last hour and per hour over the last day; one query."""
    this_minute = now.replace(second=0, microsecond=0)
    this_hour = this_minute.replace(minute=0)
    day_start = this_hour - timedelta(hours=23)
    hour_start = this_minute - timedelta(minutes=59)
    per_minute: dict[datetime, dict[str, int]] = {}
    for minute, status, n in (
        Job.objects.filter(finished_at__gte=day_start)
        .annotate(minute=TruncMinute("finished_at"))
        .values_list("minute", "status")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        per_minute.setdefault(minute, {})
        per_minute[minute][status] = per_minute[minute].get(status, 0) + n
    minute_starts = [hour_start + timedelta(minutes=i) for i in range(60)]
    minutes = [(start, per_minute.get(start, {})) for start in minute_starts]
    hours: list[tuple[datetime, dict[str, int]]] = [(day_start + timedelta(hours=i), {}) for i in range(24)]
    for minute, by_status in per_minute.items():
        counts = hours[min(23, int((minute - day_start).total_seconds() // 3600))][1]
        for status, n in by_status.items():
            counts[status] = counts.get(status, 0) + n
    return {"hour": _bars(minutes, "%H:%M"), "day": _bars(hours, "%d %b %H:00")}


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
    return [
        {
            "pk": job.pk,
            "kind": job.kind,
            "target": job.target,
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
    from django_q.status import Stat

    clusters = [
        {
            "id": stat.cluster_id,
            "host": stat.host,
            "pid": stat.pid,
            "status": stat.status,
            "workers": len(stat.workers),
            "started_at": stat.tob,
            "reincarnations": stat.reincarnations,
            "task_q_size": stat.task_q_size,
            "reported_at": stat.timestamp,
        }
        for stat in Stat.get_all()
    ]
    return {"clusters": clusters, "workers": sum(c["workers"] for c in clusters)}


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
            "jobs": _job_table(),
            "throughput": _throughput(now),
            "oldest_queued": _oldest_queued(now),
            "running": _running(),
            "failures": _failure_groups(),
            "workers": _clusters(),
            "redis": _redis(),
        }
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
    context = {
        **_context(site, request, "Failed jobs by cause"),
        "groups": groups,
        "failed_jobs": sum(g.count for g in groups),
        "scan_limit": failures.SCAN_LIMIT,
        "retry_limit": failures.RETRY_LIMIT,
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
    group = next((g for g in failures.failure_groups() if g.fingerprint == key), None)
    if group is None:
        messages.warning(request, "That group has no failed jobs left: it may have been retried already.")
        return HttpResponseRedirect(reverse("admin:offload_failures"))
    chosen = group.job_ids[: failures.RETRY_LIMIT]
    preview = list(Job.objects.filter(pk__in=chosen[:PREVIEW_ROWS]).order_by("-id"))
    question = f"Queue these failed {group.kind} jobs again? Their cause: {group.exception}: {group.message}"
    if group.count > failures.RETRY_LIMIT:
        question += f" (the first {failures.RETRY_LIMIT} of {group.count}; retry again for the next batch)"
    context = {
        **_context(site, request, f"Retry {len(chosen)} job{'s' if len(chosen) != 1 else ''}?"),
        "question": question,
        "jobs": preview,
        "count": len(chosen),
        "more": max(0, len(chosen) - len(preview)),
        "button": "Yes, retry them",
        "back": reverse("admin:offload_failures"),
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
        return site.admin_view(require_POST(bound) if post_only else bound)

    return [
        # The section's own address, a prefix of its pages' (the admin highlights the section by it).
        path("operations/", RedirectView.as_view(pattern_name="admin:offload_operations"), name="offload_section"),
        path("operations/dashboard/", view(dashboard_view), name="offload_operations"),
        path("operations/failures/", view(failures_view), name="offload_failures"),
        path("operations/failures/retry/", view(retry_group_view, post_only=True), name="offload_failures_retry"),
    ]


def app_list_entry(site: AdminSite) -> dict[str, Any]:
    """An "Operations" section for the admin's app list, linking the pages above."""
    pages = [
        {"name": name, "object_name": url_name, "admin_url": reverse(f"admin:{url_name}", current_app=site.name)}
        for name, url_name in (("Dashboard", "offload_operations"), ("Failures", "offload_failures"))
    ]
    models = [{**page, "add_url": None, "view_only": True, "perms": {"view": True}} for page in pages]
    return {
        "name": "Operations",
        "app_label": "operations",
        "app_url": reverse("admin:offload_section", current_app=site.name),
        "has_module_perms": True,
        "models": models,
    }
