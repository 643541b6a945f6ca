"""The job pages: the list with live status and progress, and each job's details and events."""

import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from offload import actions
from offload.admin.widgets import LiveJobsMedia, progress_bar, status_badge
from offload.jobs import IdempotencyKeyReused, JobConflict
from offload.models import Job, JobEvent


class JobAdmin(admin.ModelAdmin):
    Media = LiveJobsMedia
    list_display = [
        "id",
        "kind",
        "status_display",
        "progress_display",
        "target_link",
        "requested_by",
        "attempts",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status"]
    list_select_related = ["requested_by"]
    search_fields = ["=id", "kind", "error"]
    actions = ["retry_jobs", "cancel_jobs"]
    readonly_fields = [
        "kind",
        "status",
        "progress_display",
        "target_link",
        "params_json",
        "attempts",
        "max_attempts",
        "error_text",
        "result_json",
        "requested_by",
        "created_at",
        "queued_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "cancel_requested_at",
        "cancelled_by",
        "task_id",
        "idempotency_key",
        "events",
    ]
    exclude = ["progress", "target_type", "target_id", "params", "params_hash", "error", "result"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Progress")
    def progress_display(self, obj: Job) -> str:
        return progress_bar(obj)

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: Job) -> str:
        return status_badge(obj)

    @admin.display(description="Target")
    def target_link(self, obj: Job) -> str:
        if obj.target_type == "media":
            return format_html(
                "<a href='{}'>media {}</a>",
                reverse("admin:offload_mediaitem_change", args=[obj.target_id]),
                obj.target_id,
            )
        if obj.target_type == "library":
            return format_html(
                "<a href='{}'>library {}</a>",
                reverse("admin:offload_library_change", args=[obj.target_id]),
                obj.target_id,
            )
        return "—"

    @admin.display(description="Params")
    def params_json(self, obj: Job) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.params, indent=2))

    @admin.display(description="Result")
    def result_json(self, obj: Job) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2)) if obj.result is not None else "—"

    @admin.display(description="Error")
    def error_text(self, obj: Job) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.error) if obj.error else "—"

    @admin.display(description="Events")
    def events(self, obj: Job) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((e.seq, e.event, e.created_at.isoformat(timespec="seconds")) for e in obj.events.order_by("seq")[:200]),
        )
        return (
            format_html("<table><tr><th>Seq</th><th>Event</th><th>At</th></tr>{}</table>", rows)
            if rows
            else mark_safe("—")
        )

    def _each(self, request, queryset, action, verb: str) -> None:
        done, refused = 0, []
        for job in queryset:
            try:
                action(request.user, job)
                done += 1
            except (JobConflict, IdempotencyKeyReused) as exc:
                refused.append(str(exc))
        if done:
            self.message_user(request, f"{done} job{'s' if done != 1 else ''} {verb}.", messages.SUCCESS)
        for reason in refused[:10]:
            self.message_user(request, reason, messages.WARNING)

    @admin.action(description="Retry selected jobs")
    def retry_jobs(self, request, queryset):
        self._each(request, queryset, actions.retry_job, "queued")

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        self._each(request, queryset, actions.cancel_job, "cancelled")


class JobEventAdmin(admin.ModelAdmin):
    list_display = ["seq", "event", "job", "user", "created_at"]
    list_filter = ["event"]
    list_select_related = ["job", "user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def register() -> None:
    """Put these pages on the admin site (from OffloadConfig.ready())."""
    admin.site.register(Job, JobAdmin)
    admin.site.register(JobEvent, JobEventAdmin)
