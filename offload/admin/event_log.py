"""The event log's page: every job's events, newest first, filtered by event."""

from django.contrib import admin

from offload.admin.formatting import when
from offload.admin.pagination import CappedCountPaginator
from offload.models import JobEvent


class EventFilter(admin.SimpleListFilter):
    """Filter by event, from docs/api.md's list (not a DISTINCT over the log)."""

    title = "event"
    parameter_name = "event"

    def lookups(self, request, model_admin):
        return [(name, name) for name in ("queued", "started", "progress", "succeeded", "failed", "cancelled")]

    def queryset(self, request, queryset):
        return queryset.filter(event=self.value()) if self.value() else queryset


class JobEventAdmin(admin.ModelAdmin):
    list_display = ["seq", "event", "job", "user", "created_display"]
    list_filter = [EventFilter]
    list_select_related = ["job", "user"]
    show_full_result_count = False
    paginator = CappedCountPaginator

    @admin.display(description="At", ordering="created_at")
    def created_display(self, obj: JobEvent) -> str:
        return when(obj.created_at)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
