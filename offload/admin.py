import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from offload import actions, audit
from offload.admin_enrich import EnrichAdminMixin
from offload.jobs import IdempotencyKeyReused, JobConflict
from offload.models import Job, JobEvent, Library, MediaItem
from offload.outputs import url_for
from offload.paths import InvalidPath, resolve_library_path
from offload.profiles import PROFILES


def _report_queued(modeladmin, request, outcomes: list[tuple[Job, bool]]) -> None:
    audit.log_job_action(request.user, [job for job, created in outcomes if created], "Queued.", added=True)
    queued = sum(1 for _, created in outcomes if created)
    already = len(outcomes) - queued
    text = f"{queued} job{'s' if queued != 1 else ''} queued."
    if already:
        text += f" {already} already active."
    modeladmin.message_user(request, text, messages.SUCCESS)


def progress_bar(job: Job) -> str:
    value = 0 if job.progress is None else job.progress
    label = "—" if job.progress is None else f"{job.progress:.0f}%"
    return format_html(
        '<progress class="offload-progress" data-job="{}" max="100" value="{}">{}</progress> '
        '<span class="offload-progress-label" data-job="{}">{}</span>',
        job.pk,
        value,
        label,
        job.pk,
        label,
    )


class LiveJobsMedia:
    """The script that keeps statuses and progress bars current over the websocket."""

    js = ["offload/live.js"]


def status_badge(job: Job) -> str:
    return format_html(
        '<span class="offload-status offload-status-{}" data-job="{}">{}</span>', job.status, job.pk, job.status
    )


class LibraryAdminForm(forms.ModelForm):
    class Meta:
        model = Library
        fields = ["name", "path", "owner"]

    def clean_path(self) -> str:
        try:
            return str(resolve_library_path(self.cleaned_data["path"]))
        except InvalidPath as exc:
            raise ValidationError(str(exc)) from None


@admin.register(Library)
class LibraryAdmin(admin.ModelAdmin):
    form = LibraryAdminForm
    list_display = ["name", "path", "owner", "items", "last_scanned_at"]
    search_fields = ["name", "path"]
    readonly_fields = ["created_at", "last_scanned_at"]
    actions = ["scan_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").annotate(item_total=Count("items"))

    @admin.display(ordering="item_total")
    def items(self, obj: Library) -> int:
        return obj.item_total

    def save_model(self, request, obj, form, change):
        if not change and obj.owner_id is None:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Scan now")
    def scan_now(self, request, queryset):
        _report_queued(self, request, [actions.request_scan(request.user, lib) for lib in queryset])


@admin.register(MediaItem)
class MediaItemAdmin(EnrichAdminMixin, admin.ModelAdmin):
    Media = LiveJobsMedia
    list_display = ["__str__", "library", "kind", "status", "duration", "resolution", "updated_at"]
    list_filter = ["library", "kind", "status"]
    list_select_related = ["library"]
    search_fields = ["title", "relative_path", "series_title"]
    actions = ["probe", "enrich", "unlock_all_fields", "thumbnail", "transcode"]
    readonly_fields = [
        "library",
        "relative_path",
        "size",
        "mtime",
        "fingerprint",
        "status",
        "status_reason",
        *MediaItem.TECHNICAL_FIELDS,
        "probe_json",
        "jobs",
        "renditions_table",
        "poster_preview",
        "provenance_table",
        "locked_fields",
        "created_at",
        "updated_at",
    ]
    exclude = ["probe"]
    fieldsets = [
        (None, {"fields": ["library", "relative_path", "kind", "status", "status_reason"]}),
        ("Descriptive", {"fields": [*list(MediaItem.DESCRIPTIVE_FIELDS), "provenance_table"]}),
        ("Technical", {"fields": [*MediaItem.TECHNICAL_FIELDS, "size", "mtime", "fingerprint"]}),
        ("Renditions and thumbnails", {"fields": ["renditions_table", "poster_preview"]}),
        ("Jobs", {"fields": ["jobs"]}),
        ("Raw probe", {"classes": ["collapse"], "fields": ["probe_json"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def get_search_results(self, request, queryset, search_term):
        """Search through Typesense, falling back to the database when it is away."""
        from search.changelist import changelist_search

        return changelist_search(request, queryset, search_term, fallback=super().get_search_results)

    @admin.display(description="Resolution")
    def resolution(self, obj: MediaItem) -> str:
        return f"{obj.width}×{obj.height}" if obj.width and obj.height else "—"

    @admin.display(description="ffprobe output")
    def probe_json(self, obj: MediaItem) -> str:
        if not obj.probe:
            return "—"
        return format_html("<pre>{}</pre>", json.dumps(obj.probe, indent=2))

    @admin.display(description="Renditions")
    def renditions_table(self, obj: MediaItem) -> str:
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    url_for(r.path),
                    r.profile,
                    filesizeformat(r.size),
                    " + ".join(c for c in (r.video_codec, r.audio_codec) if c),
                    f"{r.width}×{r.height}" if r.height else "audio",
                    f"{r.duration or 0:.1f} s",
                )
                for r in obj.renditions.all()
            ),
        )
        if not rows:
            return "No renditions yet."
        return format_html(
            "<table><thead><tr><th>Profile</th><th>Size</th><th>Codecs</th><th>Resolution</th>"
            "<th>Duration</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Poster")
    def poster_preview(self, obj: MediaItem) -> str:
        if not obj.poster:
            return "No poster yet."
        extras = ((obj.sprite, "sprite sheet"), (obj.sprite_index, "WebVTT index"))
        links = format_html_join(" · ", "<a href='{}'>{}</a>", ((url_for(p), label) for p, label in extras if p))
        return format_html("<img src='{}' alt='poster' style='max-height:180px'><br>{}", url_for(obj.poster), links)

    @admin.display(description="Recent jobs")
    def jobs(self, obj: MediaItem) -> str:
        recent = Job.objects.filter(target_type="media", target_id=obj.pk).order_by("-created_at")[:20]
        if not recent:
            return "No jobs yet."
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:offload_job_change", args=[job.pk]),
                    job.pk,
                    job.kind,
                    status_badge(job),
                    progress_bar(job),
                    job.error or "",
                )
                for job in recent
            ),
        )
        return format_html(
            "<table><thead><tr><th>Job</th><th>Kind</th><th>Status</th><th>Progress</th>"
            "<th>Error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def save_model(self, request, obj, form, change):
        edited = [f for f in form.changed_data if f in MediaItem.DESCRIPTIVE_FIELDS]
        if change and edited:
            actions.edit_item(request.user, obj, {f: form.cleaned_data[f] for f in edited})
            changed_other = [f for f in form.changed_data if f not in edited]
            if changed_other:
                obj.save(update_fields=[*changed_other, "updated_at"])
        else:
            super().save_model(request, obj, form, change)

    @admin.action(description="Probe")
    def probe(self, request, queryset):
        _report_queued(self, request, [actions.request_probe(request.user, item) for item in queryset])

    @admin.action(description="Make thumbnails")
    def thumbnail(self, request, queryset):
        _report_queued(self, request, [actions.request_thumbnail(request.user, item) for item in queryset])

    @admin.action(description="Transcode…")
    def transcode(self, request, queryset):
        """Ask for the profile on an intermediate page, then queue one job per item."""
        profile = request.POST.get("profile", "")
        if request.POST.get("confirm") and profile in PROFILES:
            _report_queued(self, request, [actions.request_transcode(request.user, item, profile) for item in queryset])
            return None
        return TemplateResponse(
            request,
            "admin/offload/transcode_confirm.html",
            {
                **self.admin_site.each_context(request),
                "title": "Transcode media",
                "items": queryset,
                "count": queryset.count(),
                "profiles": PROFILES.values(),
                "selected": profile,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )


@admin.register(Job)
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


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    list_display = ["seq", "event", "job", "user", "created_at"]
    list_filter = ["event"]
    list_select_related = ["job", "user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
