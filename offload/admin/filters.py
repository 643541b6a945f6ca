"""The job list's filters that do not read every job row to offer their choices."""

from datetime import timedelta

from django.contrib.admin import SimpleListFilter
from django.utils import timezone

from offload.jobs import kinds


class RegisteredKindFilter(SimpleListFilter):
    """Filter by job kind, with the kinds from the registry (not a DISTINCT over every job row)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(name, name) for name in kinds.names()]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


class FinishedWithinFilter(SimpleListFilter):
    """Jobs that finished within a recent window: the dashboard's counts of finished jobs link here."""

    title = "finished"
    parameter_name = "finished"
    WINDOWS = {"hour": ("in the last hour", 1), "day": ("in the last 24 hours", 24)}

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.WINDOWS.items()]

    def queryset(self, request, queryset):
        window = self.WINDOWS.get(self.value() or "")
        if window is None:
            return queryset
        return queryset.filter(finished_at__gte=timezone.now() - timedelta(hours=window[1]))
