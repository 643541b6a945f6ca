"""The admin site: Django's, with the recent-activity panel on its index."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class OffloadAdminSite(admin.AdminSite):
    site_header = "Offload"
    site_title = "Offload admin"
    index_title = "Media library operations"

    def index(self, request, extra_context=None):
        from offload.notifications.streams import recent_events

        context = {"offload_recent_events": recent_events(request.user, limit=15), **(extra_context or {})}
        return super().index(request, extra_context=context)


class OffloadAdminConfig(AdminConfig):
    """Installed in place of django.contrib.admin, so `admin.site` is the site above."""

    default_site = "offload.admin_site.OffloadAdminSite"
