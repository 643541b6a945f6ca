"""Enrichment in the admin, as a mixin for the MediaItem ModelAdmin.

It adds an "Unlock all fields" action (enrichment itself is the registered kind's action), a provenance table
(which provider set each descriptive field, and which fields are locked, each with an
Unlock button) and the view those buttons post to.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from offload import actions, audit
from offload.admin.formatting import when
from offload.models import Job, MediaItem


def _report_enrich(modeladmin: admin.ModelAdmin, request: HttpRequest, outcomes: list[tuple[Job, bool]]) -> None:
    audit.log_job_action(request.user, [job for job, created in outcomes if created], "Queued.", added=True)
    queued = sum(1 for _, created in outcomes if created)
    text = f"{queued} enrichment job{'s' if queued != 1 else ''} queued."
    if len(outcomes) > queued:
        text += f" {len(outcomes) - queued} already active."
    modeladmin.message_user(request, text, messages.SUCCESS)


class EnrichAdminMixin:
    """Mix into MediaItemAdmin before admin.ModelAdmin; list "unlock_all_fields" in actions."""

    def get_urls(self) -> list:
        unlock = path(
            "<path:object_id>/unlock/<str:field>/",
            self.admin_site.admin_view(self.unlock_field_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_unlock_field",
        )
        return [unlock, *super().get_urls()]

    @admin.action(description="Unlock all fields and enrich again", permissions=["change"])
    def unlock_all_fields(self, request: HttpRequest, queryset) -> None:
        outcomes = []
        for item in queryset:
            actions.unlock_fields(request.user, item, list(item.locked_fields))
            outcomes.append(actions.request_job(request.user, "media.enrich", item))
        _report_enrich(self, request, outcomes)

    @admin.display(description="Provenance")
    def provenance_table(self, obj: MediaItem) -> str:
        if obj is None or obj.pk is None:
            return "—"
        provenance, locked = obj.provenance or {}, set(obj.locked_fields)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (field, provenance.get(field, "—"), self._lock_cell(obj, field) if field in locked else "")
                for field in MediaItem.DESCRIPTIVE_FIELDS
            ),
        )
        enriched = when(obj.enriched_at) if obj.enriched_at else "never"
        return format_html(
            "<table class='offload-provenance'><thead><tr><th>Field</th><th>Set by</th><th>Locked</th></tr>"
            "</thead><tbody>{}</tbody></table><p>Last enriched: {}</p>",
            rows,
            enriched,
        )

    def _lock_cell(self, obj: MediaItem, field: str) -> str:
        url = reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_unlock_field",
            args=[obj.pk, field],
        )
        # A submit button of the change form itself, aimed at the unlock view: it carries the
        # form's CSRF token, and the admin page needs no form of its own (forms cannot nest).
        return format_html(
            "locked <button type='submit' class='button' formmethod='post' formaction='{}' "
            "formnovalidate title='Let enrichment set {} again'>Unlock</button>",
            url,
            field,
        )

    def unlock_field_view(self, request: HttpRequest, object_id: str, field: str) -> HttpResponse:
        """POST: unlock one field of one item, then queue its enrichment so the field is filled again."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such media item.")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        try:
            actions.unlock_fields(request.user, obj, [field])
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            job, created = actions.request_job(request.user, "media.enrich", obj)
            note = "queued" if created else "already active"
            self.message_user(request, f"Unlocked {field}; enrichment job {job.pk} {note}.", messages.SUCCESS)
        change_url = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change"
        return HttpResponseRedirect(reverse(change_url, args=[obj.pk]))
