"""The admin site: Django's, with the recent-activity panel on its index and the operations pages."""

from functools import update_wrapper
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.common import no_append_slash

from offload.admin import cache as admin_cache
from offload.admin import dashboard, queues, schedules
from offload.notifications.streams import latest_seq, recent_events

# The operations pages every admin page links to, in the navigation bar: (label, URL name).
# A page whose URL is not registered is left out.
OPERATIONS_NAV = (
    ("Dashboard", "offload_operations"),
    ("Jobs", "offload_job_changelist"),
    ("Queues", "offload_queues"),
    ("Failures", "offload_failures"),
    ("Schedules", "offload_schedules"),
    ("Cache and rate limits", "offload_cache"),
    ("Search index", "search_indexbuild_changelist"),
)


class RefusesActionsItWillNotRun:
    """A model page answers 403 to a bulk action the user may not run, as its change form does.

    Django leaves such an action out of the menu and ignores it when posted anyway; refusing it
    says so, and makes "every action needs its permission" checkable from the registry.
    """

    def changelist_view(self, request, extra_context=None):
        action = request.POST.get("action") if request.method == "POST" else None
        if action and action not in self.get_actions(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def declared_actions(self) -> list[str]:
        """Every bulk action this page has, whoever asks (the kinds' job actions included)."""
        extra = getattr(self, "job_action_names", lambda: [])()
        return [name for _, name, _ in self._get_base_actions()] + list(extra)


class OffloadAdminSite(admin.AdminSite):
    site_header = "Offload"
    site_title = "Offload admin"
    index_title = "Media library operations"
    # One mark for an empty value on every page: the em dash the pages' own cells write, not Django's "-".
    empty_value_display = "—"
    # There is no public site to view: "/" answers 404, so the header offers no "View site" link.
    site_url = None
    # The operations bar under the header takes the sidebar's place, and the job list its width.
    enable_nav_sidebar = False

    def register(self, model_or_iterable, admin_class=None, **options):
        """Django's, with every model page refusing the actions it will not run (RefusesActionsItWillNotRun)."""
        base = admin_class or admin.ModelAdmin
        if not issubclass(base, RefusesActionsItWillNotRun):
            base = type(base.__name__, (RefusesActionsItWillNotRun, base), {"__module__": base.__module__})
        return super().register(model_or_iterable, base, **options)

    def admin_view(self, view, cacheable=False):
        """Django's wrapper, and before the view runs, the event seq the page is rendered at.

        Read before the page reads any job, so live.js resuming from it on connect replays
        whatever changed between the page's queries and its socket's hello.
        """
        wrapped = super().admin_view(view, cacheable)

        def with_seq(request, *args, **kwargs):
            # A view that reads its own seq (the dashboard's cached snapshot) says so.
            if request.user.is_active and request.user.is_staff and not getattr(view, "offload_own_seq", False):
                request.offload_seq = latest_seq(request.user)
            return wrapped(request, *args, **kwargs)

        return update_wrapper(with_seq, wrapped)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["offload_seq"] = getattr(request, "offload_seq", None)
        context["offload_nav"] = self.operations_nav(request)
        context["offload_time_zone"] = settings.TIME_ZONE
        return context

    def operations_nav(self, request: HttpRequest) -> list[dict[str, Any]]:
        """The operations pages this user may open, for the bar on every admin page."""
        if not (request.user.is_active and request.user.has_perm("offload.view_job")):
            return []
        found = []
        for label, name in OPERATIONS_NAV:
            try:
                url = reverse(f"admin:{name}", current_app=self.name)
            except NoReverseMatch:
                continue
            found.append({"label": label, "url": url, "current": request.path.startswith(url)})
        return found

    def index(self, request, extra_context=None):
        context = {"offload_recent_events": recent_events(request.user, limit=15), **(extra_context or {})}
        return super().index(request, extra_context=context)

    def get_urls(self):
        return (
            dashboard.urls(self)
            + queues.urls(self)
            + schedules.urls(self)
            + admin_cache.urls(self)
            + super().get_urls()
        )

    @no_append_slash
    def catch_all_view(self, request, url):
        """Django's redirect to the slash-ended address, else a plain 404 page.

        A raised Http404 would, with DEBUG on, list every URL pattern of the site to whoever asked.
        """
        try:
            return super().catch_all_view(request, url)
        except Http404:
            return not_found(self, request)

    def get_app_list(self, request, app_label=None):
        """The apps, headed by "Operations": the dashboard, the queues and the failure groups."""
        app_list = super().get_app_list(request, app_label)
        if app_label is None and request.user.has_perm("offload.view_job"):
            app_list.insert(0, dashboard.app_list_entry(self))
        return app_list


def not_found(site: admin.AdminSite, request: HttpRequest) -> HttpResponse:
    """The admin's own 404 page: no URL patterns, whatever DEBUG says."""
    context = {**site.each_context(request), "title": "Page not found"}
    return TemplateResponse(request, "admin/offload/404.html", context, status=404)
