"""The library and media pages."""

import json
from collections.abc import Callable

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from offload import actions
from offload.admin.enrich import EnrichAdminMixin
from offload.admin.widgets import JobActionsMixin, progress_bar, status_badge
from offload.lib.outputs import url_for
from offload.lib.paths import InvalidPath, resolve_library_path
from offload.models import Job, Library, MediaItem

# Another app (search) may answer the media list's search box; the database answers otherwise.
_media_search: Callable | None = None


def use_media_search(search: Callable) -> None:
    """Answer the media list's search with `search(request, queryset, term, fallback=...)`."""
    global _media_search
    _media_search = search


class LibraryAdminForm(forms.ModelForm):
    class Meta:
        model = Library
        fields = ["name", "path", "owner"]

    def clean_path(self) -> str:
        try:
            return str(resolve_library_path(self.cleaned_data["path"]))
        except InvalidPath as exc:
            raise ValidationError(str(exc)) from None


class LibraryAdmin(JobActionsMixin, admin.ModelAdmin):
    form = LibraryAdminForm
    list_display = ["name", "path", "owner", "items", "last_scanned_at"]
    search_fields = ["name", "path"]
    readonly_fields = ["created_at", "last_scanned_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").annotate(item_total=Count("items"))

    @admin.display(ordering="item_total")
    def items(self, obj: Library) -> int:
        return obj.item_total

    def save_model(self, request, obj, form, change):
        if not change and obj.owner_id is None:
            obj.owner = request.user
        super().save_model(request, obj, form, change)


class MediaItemAdmin(JobActionsMixin, EnrichAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "library", "kind", "status", "duration", "resolution", "updated_at"]
    list_filter = ["library", "kind", "status"]
    list_select_related = ["library"]
    search_fields = ["title", "relative_path", "series_title"]
    actions = ["unlock_all_fields"]
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
        """Search through the registered search (Typesense), or the database."""
        if _media_search is None:
            return super().get_search_results(request, queryset, search_term)
        return _media_search(request, queryset, search_term, fallback=super().get_search_results)

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


def register() -> None:
    """Put these pages on the admin site (from OffloadConfig.ready())."""
    admin.site.register(Library, LibraryAdmin)
    admin.site.register(MediaItem, MediaItemAdmin)
