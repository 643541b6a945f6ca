"""The admin's steering: the Queues page (one row per job kind, with pause, resume and cap
controls) and quieting or waking a worker cluster from the dashboard's Workers panel.

Each control asks for confirmation on a page of its own (offload/actions.py applies it; queue
changes are written to the admin log). The figures and forecast are those of GET /api/v1/queues/.
"""

import functools
from typing import Any

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST, require_safe

from offload import actions
from offload import permissions as rules
from offload.admin.snapshot_cache import forget_snapshot
from offload.caps import CapError, parse_cap
from offload.jobs import UnknownJobKind, queue_rows

CHANGES = {
    "pause": "Pause",
    "resume": "Resume",
    "cap": "Set the cap of",
}


def _context(site: AdminSite, request: HttpRequest, title: str) -> dict[str, Any]:
    return {**site.each_context(request), "title": title}


def queues_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """One row per kind: lane, state, figures, drain forecast, and the controls."""
    if not request.user.has_perm("offload.view_job"):
        return HttpResponseForbidden("You may not view jobs.")
    context = {
        **_context(site, request, "Queues"),
        "rows": queue_rows(),
        "can_change": rules.STEER_QUEUES.allows(request.user),
    }
    return TemplateResponse(request, "admin/offload/queues.html", context)


def steering(changes: dict[str, str], back_page: str, refusal: str):
    """A steering view's checks: the user may steer and asked a known change. The view gets (change, back)."""

    def wrap(fn):
        @functools.wraps(fn)
        def view(site: AdminSite, request: HttpRequest) -> HttpResponse:
            if not rules.STEER_QUEUES.allows(request.user):
                return HttpResponseForbidden(refusal)
            back = HttpResponseRedirect(reverse(back_page, current_app=site.name))
            change = request.POST.get("change", "")
            if change not in changes:
                messages.error(request, "Unknown change.")
                return back
            return fn(site, request, change, back)

        return view

    return wrap


@steering(CHANGES, "admin:offload_queues", "You may not steer the queues.")
def change_view(site: AdminSite, request: HttpRequest, change: str, back: HttpResponse) -> HttpResponse:
    """Ask for confirmation of a pause, resume or cap; apply it once confirmed."""
    kind = request.POST.get("kind", "")
    try:
        cap = parse_cap(request.POST.get("concurrency", "")) if change == "cap" else None
    except CapError as exc:
        messages.error(request, str(exc))
        return back
    if request.POST.get("confirmed") != "yes":
        context = {
            **_context(site, request, "Are you sure?"),
            "change": change,
            "verb": CHANGES[change],
            "kind": kind,
            "concurrency": "" if cap is None else cap,
        }
        return TemplateResponse(request, "admin/offload/queue_confirm.html", context)
    try:
        if change == "pause":
            actions.pause_kind(request.user, kind)
            messages.success(request, f"Paused {kind}: its jobs wait until it is resumed.")
        elif change == "resume":
            actions.resume_kind(request.user, kind)
            messages.success(request, f"Resumed {kind}.")
        else:
            actions.cap_kind(request.user, kind, cap)
            # Worded to start with a capital of its own: the admin capitalises a message's first letter.
            limit = "no cap" if cap is None else f"at most {cap} at a time"
            messages.success(request, f"Capped {kind}: {limit}.")
    except UnknownJobKind:
        messages.error(request, f"No job kind {kind!r}.")
    return back


QUIET_CHANGES = {"quiet": "Quiet", "wake": "Wake"}


@steering(QUIET_CHANGES, "admin:offload_operations", "You may not quiet or wake worker clusters.")
def quiet_view(site: AdminSite, request: HttpRequest, change: str, back: HttpResponse) -> HttpResponse:
    """Ask for confirmation of quieting (or waking) a worker cluster; apply it once confirmed."""
    cluster = request.POST.get("cluster", "")
    if request.POST.get("confirmed") != "yes":
        context = {
            **_context(site, request, "Are you sure?"),
            "change": change,
            "verb": QUIET_CHANGES[change],
            "cluster": cluster,
            "where": request.POST.get("where", ""),
        }
        return TemplateResponse(request, "admin/offload/cluster_confirm.html", context)
    try:
        host, pid = actions.quiet_cluster(request.user, cluster, quiet_it=change == "quiet")
    except ValueError as exc:
        messages.error(request, str(exc))
        return back
    # The dashboard's cached snapshot says what the cluster was: the next look reads it afresh.
    forget_snapshot()
    if change == "quiet":
        messages.success(
            request, f"Quieted the cluster on {host}/{pid}: it finishes its running jobs and takes no more."
        )
    else:
        messages.success(request, f"Woke the cluster on {host}/{pid}: it takes jobs again.")
    return back


def urls(site: AdminSite) -> list[URLPattern]:
    """The Queues page and its change form, as admin views (login, staff and CSRF checks included)."""

    def view(fn, *, post_only: bool = False):
        def bound(request: HttpRequest) -> HttpResponse:
            return fn(site, request)

        # A page that only shows answers 405 to a POST: what changes state is a POST-only view with its permission.
        return site.admin_view(require_POST(bound) if post_only else require_safe(bound))

    return [
        path("operations/queues/", view(queues_view), name="offload_queues"),
        path("operations/queues/change/", view(change_view, post_only=True), name="offload_queues_change"),
        path("operations/workers/quiet/", view(quiet_view, post_only=True), name="offload_workers_quiet"),
    ]
