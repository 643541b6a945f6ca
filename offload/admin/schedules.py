"""The admin's Schedules page: each periodic task with its lane, interval, last run and next run,
and "Run now" for those who steer the queues.

django-q2's own schedule list shows "-" and "?" for the last run of every schedule here:
Offload keeps no task results. The last run comes from offload.jobs.schedules.last_schedule_runs().
"""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST, require_safe
from django_q.models import Schedule

from offload import actions
from offload import permissions as rules
from offload.admin.formatting import duration
from offload.jobs import last_schedule_runs


def every(schedule: Schedule) -> str:
    """How often it runs, in words: "every 1 min", "hourly", "cron 0 3 * * *"."""
    if schedule.schedule_type == Schedule.MINUTES:
        return f"every {duration((schedule.minutes or 1) * 60)}"
    if schedule.schedule_type == Schedule.CRON:
        return f"cron {schedule.cron}"
    return schedule.get_schedule_type_display().lower()


def schedule_rows() -> list[dict[str, Any]]:
    """One row per schedule, with its last run as the worker that ran it recorded it."""
    lane_of_queue = {queue: lane for lane, queue in settings.OFFLOAD_LANES.items()}
    runs = last_schedule_runs()
    rows = []
    for schedule in Schedule.objects.order_by("name"):
        run = runs.get(schedule.name)
        took = None
        if run and run["started"] and run["stopped"]:
            took = duration(max(0.0, (run["stopped"] - run["started"]).total_seconds()))
        rows.append(
            {
                "schedule": schedule,
                "lane": lane_of_queue.get(schedule.cluster or settings.Q_CLUSTER["name"], schedule.cluster),
                "every": every(schedule),
                "run": run,
                "took": took,
            }
        )
    return rows


def schedules_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """The schedules, their last and next runs (staff who may view jobs)."""
    if not request.user.has_perm("offload.view_job"):
        return HttpResponseForbidden("You may not view jobs.")
    context = {
        **site.each_context(request),
        "title": "Schedules",
        "rows": schedule_rows(),
        "can_run": rules.STEER_QUEUES.allows(request.user),
    }
    return TemplateResponse(request, "admin/offload/schedules.html", context)


def run_now_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """POST: queue a schedule's task now; back to the page with what happened."""
    try:
        name = actions.run_schedule_now(request.user, int(request.POST.get("schedule", "0") or 0))
    except PermissionDenied as exc:
        return HttpResponseForbidden(str(exc))
    except ValueError:
        messages.error(request, "No such schedule.")
    else:
        messages.success(request, f"Queued {name} to run now; its next scheduled run stays as it was.")
    return HttpResponseRedirect(reverse("admin:offload_schedules", current_app=site.name))


def urls(site: AdminSite) -> list[URLPattern]:
    """The Schedules page and its Run now, as admin views (login, staff and CSRF checks included)."""

    def bound(fn):
        def view(request: HttpRequest) -> HttpResponse:
            return fn(site, request)

        return view

    return [
        path("operations/schedules/", site.admin_view(require_safe(bound(schedules_view))), name="offload_schedules"),
        path(
            "operations/schedules/run/",
            site.admin_view(require_POST(bound(run_now_view))),
            name="offload_schedules_run",
        ),
    ]
