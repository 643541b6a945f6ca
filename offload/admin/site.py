"""The admin site: Django's, with the recent-activity panel on its index and the operations pages."""

from django.contrib import admin

from offload.admin import cache as admin_cache
from offload.admin import dashboard, queues
from offload.notifications.streams import recent_events


class OffloadAdminSite(admin.AdminSite):
    site_header = "Offload"
    site_title = "Offload admin"
    index_title = "Media library operations"

    def index(self, request, extra_context=None):
        context = {"offload_recent_events": recent_events(request.user, limit=15), **(extra_context or {})}
        return super().index(request, extra_context=context)

    def get_urls(self):
        return dashboard.urls(self) + queues.urls(self) + admin_cache.urls(self) + super().get_urls()

    def get_app_list(self, request, app_label=None):
        """The apps, headed by "Operations": the dashboard, the queues and the failure groups."""
        app_list = super().get_app_list(request, app_label)
        if app_label is None and request.user.has_perm("offload.view_job"):
            app_list.insert(0, dashboard.app_list_entry(self))
        return app_list
