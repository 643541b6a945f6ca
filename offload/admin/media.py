"""The library and media pages."""

import json
from collections.abc import Callable

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from offload import actions
from offload import permissions as rules
from offload.admin import readable
from offload.admin.badges import progress_bar, status_badge
from offload.admin.enrich import EnrichAdminMixin
from offload.admin.formatting import bitrate, duration, run_seconds, size, when
from offload.admin.job_actions import JobActionsMixin, report_queued
from offload.admin.pagination import CappedCountPaginator
from offload.admin.tags import TagListField
from offload.jobs import kinds
from offload.lib.outputs import url_for
from offload.lib.paths import InvalidPath, resolve_library_path
from offload.models import Job, Library, MediaItem, Rendition

# The technical fields as the item page shows them: names people use, units on every number.
READABLE_TECHNICAL = (
    "container_display",
    "duration_display",
    "bitrate_display",
    "video_codec_display",
    "audio_codec_display",
    "probed_display",
)
TECHNICAL_SHOWN = (
    "container_display",
    "duration_display",
    "width",
    "height",
    "bitrate_display",
    "video_codec_display",
    "audio_codec_display",
    "audio_channels",
    "languages",
    "probed_display",
)

# Another app (search) may answer the media list's search box; the database answers otherwise.
_media_search: Callable | None = None


def use_media_search(search: Callable) -> None:
    """Answer the media list's search with `search(request, queryset, term, fallback=...)`."""
    global _media_search
    _media_search = search


class LibraryAdminForm(forms.ModelForm):
    class Meta:
        model = Library
        fields = ["name", "path", "owner", "members"]

    def clean_path(self) -> str:
        try:
            return str(resolve_library_path(self.cleaned_data["path"]))
        except InvalidPath as exc:
            raise ValidationError(str(exc)) from None


class MediaItemAdminForm(forms.ModelForm):
    # Limits as enrichment keeps them (offload/handlers/enrich/merge.py LIST_LIMITS).
    genres = TagListField(max_items=50, max_item_length=100)
    people = TagListField(max_items=200, max_item_length=200)
    tags = TagListField(max_items=100, max_item_length=100)

    class Meta:
        model = MediaItem
        # The admin passes the fieldsets' editable fields; these are the ones a person edits.
        fields = ["kind", *MediaItem.DESCRIPTIVE_FIELDS]


# Scans a library page lists, newest first.
SCANS_SHOWN = 10


class LibraryAdmin(JobActionsMixin, admin.ModelAdmin):
    form = LibraryAdminForm
    list_display = ["name", "path", "owner", "items", "last_scanned_at"]
    search_fields = ["name", "path"]
    readonly_fields = ["created_at", "last_scanned_at", "items_link", "scan_history"]
    change_form_template = "admin/offload/library/change_form.html"
    # Members are the users besides the owner who see the library, its items and renditions.
    filter_horizontal = ["members"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "path", "owner"]
        return ["name", "path", "owner", "items_link", "created_at", "last_scanned_at", "scan_history"]

    @admin.display(ordering="item_count")
    def items(self, obj: Library) -> str:
        return self.items_link(obj)

    @admin.display(description="Items")
    def items_link(self, obj: Library) -> str:
        total = obj.item_count
        return format_html(
            '<a href="{}?library__id__exact={}">{} item{}</a>',
            reverse("admin:offload_mediaitem_changelist"),
            obj.pk,
            total,
            "" if total == 1 else "s",
        )

    @admin.display(description="Scans")
    def scan_history(self, obj: Library) -> str:
        scans = Job.objects.filter(kind="library.scan", target_type="library", target_id=obj.pk).order_by("-id")[
            :SCANS_SHOWN
        ]
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:offload_job_change", args=[job.pk]),
                    job.pk,
                    status_badge(job),
                    when(job.finished_at or job.created_at),
                    duration(run_seconds(job, timezone.now())),
                    scan_outcome(job),
                )
                for job in scans
            ),
        )
        if not rows:
            return "Never scanned."
        return format_html(
            "<table><thead><tr><th>Scan</th><th>Status</th><th>Finished (or asked)</th><th>Took</th>"
            "<th>Result</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Libraries", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        kind = kinds.get_kind("library.scan")
        library = self.get_object(request, object_id)
        may_scan = kind.may_request(request.user) and request.user.has_perm(rules.REQUEST_JOB.permission)
        context = {"can_scan": may_scan, **(extra_context or {})}
        if library is not None:
            context.update(title=f"Library: {library}", subtitle=None)
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self):
        scan = path("<int:object_id>/scan/", self.admin_site.admin_view(self.scan_view), name="offload_library_scan")
        return [scan, *super().get_urls()]

    def scan_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """POST: queue a scan of this library (or point at the one already active)."""
        library = get_object_or_404(Library, pk=object_id)
        page = reverse("admin:offload_library_change", args=[library.pk])
        if request.method != "POST":
            return HttpResponseRedirect(page)
        if not (
            kinds.get_kind("library.scan").may_request(request.user)
            and request.user.has_perm(rules.REQUEST_JOB.permission)
        ):
            return HttpResponseForbidden("You may not scan libraries.")
        report_queued(self, request, [actions.request_job(request.user, "library.scan", library, {})])
        return HttpResponseRedirect(page)

    def save_model(self, request, obj, form, change):
        if not change and obj.owner_id is None:
            obj.owner = request.user
        super().save_model(request, obj, form, change)


def scan_outcome(job: Job) -> str:
    """What a scan found, in words: "3 created, 1 updated, 0 removed"; its error when it failed."""
    if job.status == "failed":
        return job.error or "failed"
    if not isinstance(job.result, dict):
        return "—"
    counts = [(key, n) for key, n in job.result.items() if isinstance(n, int) and not isinstance(n, bool)]
    return ", ".join(f"{n} {key.replace('_', ' ')}" for key, n in counts) or "—"


class MediaItemAdmin(JobActionsMixin, EnrichAdminMixin, admin.ModelAdmin):
    form = MediaItemAdminForm
    list_display = [
        "poster_thumb",
        "__str__",
        "library",
        "kind",
        "status",
        "duration_display",
        "resolution",
        "size_display",
        "updated_at",
    ]
    list_display_links = ["poster_thumb", "__str__"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_filter = ["library", "kind", "status"]
    list_select_related = ["library"]
    # Facets too: "Drama" finds the items whose genres name it (the JSON list's text on PostgreSQL).
    search_fields = ["title", "relative_path", "series_title", "original_title", "genres"]
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
        *READABLE_TECHNICAL,
        "size_display",
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
    change_form_template = "admin/offload/mediaitem/change_form.html"
    fieldsets = [
        (None, {"fields": ["library", "relative_path", "kind", "status", "status_reason"]}),
        ("Descriptive", {"fields": [*list(MediaItem.DESCRIPTIVE_FIELDS), "provenance_table"]}),
        ("Technical", {"fields": [*TECHNICAL_SHOWN, "size_display", "mtime", "fingerprint"]}),
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

    def has_add_permission(self, request) -> bool:
        # Items are the scanner's: they come from files in a library, never from a form.
        return False

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Media items", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        item = self.get_object(request, object_id)
        context = {"title": str(item), "subtitle": None} if item is not None else {}
        # Probe, Enrich, Thumbnails, Transcode…: the list's actions, for this one item.
        context["job_buttons"] = self.job_buttons(request)
        return super().change_view(request, object_id, form_url, {**context, **(extra_context or {})})

    @admin.display(description="Resolution")
    def resolution(self, obj: MediaItem) -> str:
        return f"{obj.width}×{obj.height}" if obj.width and obj.height else "—"

    @admin.display(description="Poster")
    def poster_thumb(self, obj: MediaItem) -> str:
        if not obj.poster:
            return format_html('<span class="offload-poster-none" title="{}"></span>', "No poster yet")
        return format_html('<img class="offload-poster-thumb" src="{}" alt="" loading="lazy">', url_for(obj.poster))

    @admin.display(description="Duration", ordering="duration")
    def duration_display(self, obj: MediaItem) -> str:
        return duration(obj.duration)

    @admin.display(description="Size", ordering="size")
    def size_display(self, obj: MediaItem) -> str:
        return size(obj.size)

    @admin.display(description="Container")
    def container_display(self, obj: MediaItem) -> str:
        if not obj.container:
            return "—"
        return format_html('<span title="{}">{}</span>', obj.container, readable.container_name(obj.container))

    @admin.display(description="Bitrate")
    def bitrate_display(self, obj: MediaItem) -> str:
        return bitrate(obj.bitrate)

    @admin.display(description="Video codec")
    def video_codec_display(self, obj: MediaItem) -> str:
        return _codec(obj.video_codec)

    @admin.display(description="Audio codec")
    def audio_codec_display(self, obj: MediaItem) -> str:
        return _codec(obj.audio_codec)

    @admin.display(description="Probed")
    def probed_display(self, obj: MediaItem) -> str:
        return when(obj.probed_at)

    @admin.display(description="ffprobe output")
    def probe_json(self, obj: MediaItem) -> str:
        if not obj.probe:
            return "—"
        return format_html("<pre>{}</pre>", json.dumps(obj.probe, indent=2))

    @admin.display(description="Renditions")
    def renditions_table(self, obj: MediaItem) -> str:
        renditions = list(obj.renditions.all())
        if not renditions:
            return "No renditions yet."
        poster = url_for(obj.poster) if obj.poster else ""
        return format_html(
            '<div class="offload-players">{}</div>',
            format_html_join("", "{}", ((player(r, poster),) for r in renditions)),
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


def _codec(name: str) -> str:
    if not name:
        return "—"
    return format_html('<span title="{}">{}</span>', name, readable.codec_name(name))


def rendition_bitrate(rendition: Rendition) -> str:
    """The rendition's bitrate; "" when it is not known.

    An HLS playlist's probed bitrate is the playlist file's own few hundred bytes over the whole
    duration ("0 kb/s"): its real one is its segments' size (the rendition's size) over the duration.
    """
    if rendition.path.endswith(".m3u8"):
        if not rendition.size or not rendition.duration:
            return ""
        return bitrate(round(rendition.size * 8 / rendition.duration))
    return bitrate(rendition.bitrate) if rendition.bitrate else ""


def player(rendition: Rendition, poster: str = "") -> str:
    """An HTML5 player for one rendition (HLS where the browser plays it natively), with its facts."""
    url = url_for(rendition.path)
    facts = " · ".join(
        part
        for part in (
            size(rendition.size),
            duration(rendition.duration),
            f"{rendition.width}×{rendition.height}" if rendition.height else "audio only",
            " + ".join(readable.codec_name(c) for c in (rendition.video_codec, rendition.audio_codec) if c),
            rendition_bitrate(rendition),
        )
        if part
    )
    if not rendition.video_codec:
        element = format_html('<audio controls preload="none" src="{}"></audio>', url)
    elif rendition.path.endswith(".m3u8"):
        element = format_html(
            '<video controls preload="none" poster="{}"><source src="{}" type="application/vnd.apple.mpegurl">'
            "</video><p class='offload-caption'>HLS plays where the browser plays it natively (Safari, iOS, Android); "
            "elsewhere, open the playlist in a player.</p>",
            poster,
            url,
        )
    else:
        element = format_html('<video controls preload="none" poster="{}" src="{}"></video>', poster, url)
    return format_html(
        # Not Django's "help" class: inside the form's aligned rows it is indented past the label column.
        '<div class="offload-player"><p><strong><a href="{}">{}</a></strong></p>{}'
        '<p class="offload-caption">{}</p></div>',
        url,
        rendition.profile,
        element,
        facts,
    )


def register() -> None:
    """Put these pages on the admin site (from OffloadConfig.ready())."""
    admin.site.register(Library, LibraryAdmin)
    admin.site.register(MediaItem, MediaItemAdmin)
