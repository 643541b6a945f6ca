"""Operators' view of search: pending writes, index builds, the reindex button and the drift page."""

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from offload import audit, jobs
from offload.models import MediaItem
from offload.permissions import Rule
from search import drift
from search import typesense as ts
from search.models import IndexBuild, PendingSync

# Queue a reindex or a drift repair (both rewrite the index every user searches).
REBUILD_INDEX = Rule("search.change_indexbuild")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting an outbox row loses a write; builds are history.
        return False


@admin.register(PendingSync)
class PendingSyncAdmin(ReadOnlyAdmin):
    list_display = ["item_id", "enqueued_at", "marked_at", "attempts", "claimed_until", "last_error"]
    search_fields = ["=item_id"]


@admin.register(IndexBuild)
class IndexBuildAdmin(ReadOnlyAdmin):
    list_display = ["collection", "status", "started_at", "finished_at", "documents", "replayed", "error"]
    list_filter = ["status"]
    change_list_template = "search/admin/indexbuild_change_list.html"

    def get_urls(self):
        own = [
            path("reindex/", self.admin_site.admin_view(require_POST(self.reindex_view)), name="search_reindex"),
            path("drift/", self.admin_site.admin_view(self.drift_view), name="search_drift"),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        context = {"may_rebuild": REBUILD_INDEX.allows(request.user), **(extra_context or {})}
        return super().changelist_view(request, context)

    def reindex_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a search.reindex job (the worker builds; the request only enqueues)."""
        if not REBUILD_INDEX.allows(request.user):
            return HttpResponse("You may not rebuild the search index.", status=403)
        if request.POST.get("post") != "yes":
            return self._confirm_reindex(request)
        job, created = jobs.enqueue("search.reindex", user=request.user)
        if created:
            audit.log_job_action(request.user, [job], "Queued.", added=True)
        text = f"Reindex job {job.pk} queued." if created else f"Reindex job {job.pk} is already active."
        self.message_user(request, text, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:offload_job_change", args=[job.pk]))

    def _confirm_reindex(self, request: HttpRequest) -> HttpResponse:
        """What a reindex does, and to how many items, before it is queued."""
        items = MediaItem.objects.count()
        last = IndexBuild.objects.order_by("-pk").first()
        context = {
            **self.admin_site.each_context(request),
            "title": "Rebuild the search index?",
            "question": "A worker builds a new collection from every media item and swaps the alias to it; "
            "searches keep answering from the old one until then.",
            "items": [f"Last build: {last}" if last else "No build yet."],
            "count": items,
            "noun": "media item" if items == 1 else "media items",
            "button": "Yes, reindex now",
            "back": reverse("admin:search_indexbuild_changelist"),
            "hidden": [("post", "yes")],
            "form_action": request.path,
            "opts": self.model._meta,
        }
        return render(request, "admin/offload/confirm.html", context)

    def drift_view(self, request: HttpRequest) -> HttpResponse:
        """Missing, orphaned and stale documents; POST queues their repair."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        if request.method == "POST" and not REBUILD_INDEX.allows(request.user):
            return HttpResponse("You may not repair the search index.", status=403)
        try:
            report = drift.find_drift()
        except (ts.SearchUnavailable, *ts.ERRORS) as exc:
            self.message_user(request, f"Typesense cannot be read: {exc}", messages.ERROR)
            report = None
        if request.method == "POST" and report is not None:
            # The repair writes run on the search lane; the request only marks the items.
            queued = drift.repair(report, now=False)
            self.message_user(request, f"{queued} item(s) queued for re-indexing.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:search_drift"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Search index drift",
            "opts": self.model._meta,
            "report": report,
            "summary": report.summary() if report else None,
            "may_repair": REBUILD_INDEX.allows(request.user),
        }
        return render(request, "search/admin/drift.html", context)
