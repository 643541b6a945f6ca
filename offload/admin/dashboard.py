"""The admin's operations dashboard: its snapshot, the panels other apps add to it, and the Operations section.

The dashboard is one snapshot of a few queries and service calls (offload/admin/panels.py, on the
spine's read side offload.jobs.overview), kept in the cache for OFFLOAD_DASHBOARD_CACHE_SECONDS, so
a room full of operators reloading it costs the database no more than one of them. Progress bars
on it follow the websocket (live.js). The failure groups' pages are offload/admin/failures.py.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe
from django.views.generic import RedirectView

from offload.admin import failures, panels
from offload.admin.snapshot_cache import CACHE_KEY
from offload.jobs import overview, queue_rows
from offload.models import JobEvent

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
        finishes = overview.finishes(now)
        active = overview.job_counts(now)
        data.update(
            jobs=panels.job_table(active),
            throughput=panels.throughput(finishes),
            latency=panels.latency(finishes),
            queue_depth=panels.queue_depth(now, active),
            retention=panels.retention(finishes),
            oldest_queued=overview.oldest_queued(now),
            attention=panels.attention(now),
            running=panels.running_jobs(),
            failures=panels.failure_groups(),
            workers=panels.cluster_stats(),
            redis=panels.redis_info(),
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


def urls(site: AdminSite) -> list[URLPattern]:
    """The dashboard and the Failures page (offload/admin/failures.py), as admin views (login, staff, CSRF checked)."""

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
        path("operations/failures/", view(failures.failures_view), name="offload_failures"),
        path(
            "operations/failures/retry/", view(failures.retry_group_view, post_only=True), name="offload_failures_retry"
        ),
    ]


def app_list_entry(site: AdminSite) -> dict[str, Any]:
    """An "Operations" section for the admin's app list, linking its pages."""
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
