"""An admin site with the enrichment mixin wired as offload/admin/media.py wires it, for its tests."""

from django.contrib import admin
from django.urls import path

from offload.admin.enrich import EnrichAdminMixin
from offload.admin.job_actions import JobActionsMixin
from offload.models import MediaItem

site = admin.AdminSite(name="enrich_admin")


class MediaItemEnrichAdmin(JobActionsMixin, EnrichAdminMixin, admin.ModelAdmin):
    actions = ["unlock_all_fields"]
    fields = ["title", "year", "provenance_table"]
    readonly_fields = ["provenance_table"]


site.register(MediaItem, MediaItemEnrichAdmin)

urlpatterns = [path("admin/", site.urls)]
