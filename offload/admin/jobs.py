"""The job pages: the live list and each job's read-only page with its actions.

The page's layout and its own fields are job_page.py (its timeline, timeline.py); the actions'
confirmation page is confirm.py and the event log's page event_log.py. This module registers
both ModelAdmins.
"""

from pathlib import PurePosixPath

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Case, Count, OuterRef, Q, Subquery, When
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from offload import actions
from offload.admin import readable
from offload.admin.badges import (
    heartbeat_cell,
    job_link,
    job_links,
    live_field,
    live_time,
    progress_bar,
    status_badge,
    waiting_note,
)
from offload.admin.confirm import PREVIEW_ROWS, confirmation
from offload.admin.event_log import JobEventAdmin
from offload.admin.filters import FinishedWithinFilter, RegisteredKindFilter
from offload.admin.formatting import duration, run_seconds, wait_seconds, when
from offload.admin.job_page import JobPageFields
from offload.admin.pagination import CappedCountPaginator
from offload.jobs import IdempotencyKeyReused, JobConflict, UnknownJobKind, get_kind, waiting
from offload.models import (
    FINISHED_STATUSES,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
    Library,
    MediaItem,
    QueueControl,
)

RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
CANCELLABLE = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobAdmin(JobPageFields, admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "lane_display",
        "status_display",
        "progress_display",
        "target_link",
        "attempts_display",
        "wait_display",
        "run_display",
        "error_display",
        "created_display",
        "finished_display",
    ]
    list_filter = ["status", RegisteredKindFilter, FinishedWithinFilter]
    list_select_related = ["requested_by"]
    # Also the target's title, file name and library (get_search_results).
    search_fields = ["=id", "kind", "error"]
    actions = ["retry_jobs", "cancel_jobs", "delete_finished_jobs"]
    # The list's pages are read with a LIMIT off the newest-first indexes; "N jobs" is counted
    # to a cap, never over the whole table.
    show_full_result_count = False
    paginator = CappedCountPaginator
    # A page of 50 live rows renders in half the time of Django's 100, and fits a screen or two.
    list_per_page = 50
    change_form_template = "admin/offload/job/change_form.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # A job's page is a record, not a form: its changes come from Retry and Cancel.
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        # Each row's kind's hold, read with the rows: a queued row says why it waits without a
        # query of its own (offload/jobs/waiting.py).
        controls = QueueControl.objects.filter(kind=OuterRef("kind"))
        running = (
            Job.objects.filter(kind=OuterRef("kind"), status=JobStatus.RUNNING)
            .order_by()
            .values("kind")
            .annotate(n=Count("id"))
            .values("n")
        )
        # And its target's name, read with the row too (readable.target_link).
        media = MediaItem.objects.filter(pk=OuterRef("target_id"))
        libraries = Library.objects.filter(pk=OuterRef("target_id"))
        # And when its last attempt ended: "Ran" is that attempt's time (formatting.run_seconds).
        last_attempt = JobAttempt.objects.filter(job_id=OuterRef("pk")).order_by("-number")
        return (
            super()
            .get_queryset(request)
            .annotate(
                hold_paused=Subquery(controls.values("paused")[:1]),
                hold_cap=Subquery(controls.values("concurrency")[:1]),
                hold_running=Coalesce(Subquery(running[:1]), 0),
                target_title=Case(
                    When(target_type="media", then=Subquery(media.values("title")[:1])),
                    When(target_type="library", then=Subquery(libraries.values("name")[:1])),
                ),
                target_path=Case(When(target_type="media", then=Subquery(media.values("relative_path")[:1]))),
                target_library=Case(When(target_type="media", then=Subquery(media.values("library__name")[:1]))),
                last_attempt_ended_at=Subquery(last_attempt.values("finished_at")[:1]),
            )
        )

    def get_search_results(self, request, queryset, search_term):
        """Besides id, kind and error: the target's title, file name or library, and "media 6" for a target."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return found, may_have_duplicates
        words = term.split()
        if len(words) == 2 and words[0] in readable.TARGET_PAGES and words[1].isdigit():
            return queryset.filter(target_type=words[0], target_id=int(words[1])), may_have_duplicates
        items = MediaItem.objects.filter(
            Q(title__icontains=term) | Q(relative_path__icontains=term) | Q(library__name__icontains=term)
        ).values("pk")
        libraries = Library.objects.filter(name__icontains=term).values("pk")
        by_target = queryset.filter(
            Q(target_type="media", target_id__in=items) | Q(target_type="library", target_id__in=libraries)
        )
        return found | by_target, may_have_duplicates

    # --- The list's columns (also the page's fields) --------------------------------

    @admin.display(description="Lane")
    def lane_display(self, obj: Job) -> str:
        # The worker pool that runs the kind (the Workers panel's first column); "—" for a kind no longer registered.
        try:
            return get_kind(obj.kind).lane
        except UnknownJobKind:
            return "—"

    @admin.display(description="Progress")
    def progress_display(self, obj: Job) -> str:
        return progress_bar(obj)

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: Job) -> str:
        # Under the badge: a running job's heartbeat (and "worker lost"), a queued job's hold. The
        # note is always there, even empty, so the live list patches the cell's two parts in place.
        if obj.status == JobStatus.RUNNING:
            note = heartbeat_cell(obj)
        else:
            note = waiting_note(obj, _holds(obj)) if obj.status == JobStatus.QUEUED else ""
        return format_html(
            '{}<span class="offload-status-note" data-job="{}">{}</span>', status_badge(obj), obj.pk, note
        )

    @admin.display(description="Target")
    def target_link(self, obj: Job) -> str:
        names = None
        if getattr(obj, "target_title", None) is not None:
            # As the list's query read it (get_queryset).
            label = obj.target_title or PurePosixPath(obj.target_path or "").name
            names = {(obj.target_type, obj.target_id): (label, obj.target_library or "")}
        return readable.target_link(obj.target_type, obj.target_id, names)

    @admin.display(description="Tries")
    def attempts_display(self, obj: Job) -> str:
        return live_field(obj, "attempts", obj.attempts)

    @admin.display(description="Waited")
    def wait_display(self, obj: Job) -> str:
        now = timezone.now()
        return format_html(
            '<span class="offload-field" data-job="{}" data-field="wait" data-queued-at="{}" data-waiting="{}">'
            "{}</span>",
            obj.pk,
            obj.queued_at.isoformat(),
            # A queued job's wait ticks in the page; one in a backoff is not due yet.
            "1" if obj.status == JobStatus.QUEUED and obj.queued_at <= now else "",
            duration(wait_seconds(obj, now)),
        )

    @admin.display(description="Ran")
    def run_display(self, obj: Job) -> str:
        return format_html(
            '<span class="offload-field" data-job="{}" data-field="run" data-started-at="{}" data-running="{}">'
            "{}</span>",
            obj.pk,
            obj.started_at.isoformat() if obj.started_at else "",
            "1" if obj.status == JobStatus.RUNNING else "",
            duration(run_seconds(obj, timezone.now())),
        )

    @admin.display(description="Error")
    def error_display(self, obj: Job) -> str:
        first = (obj.error or "").strip().splitlines()[:1]
        text = Truncator(first[0]).chars(60) if first else ""
        # Red for a failure; a cancel's reason ("Cancelled on request.") is a plain note.
        return format_html(
            '<span class="offload-field{}" data-job="{}" data-field="error" title="{}">{}</span>',
            " offload-error-failed" if obj.status == JobStatus.FAILED else "",
            obj.pk,
            obj.error or "",
            text,
        )

    @admin.display(description="Created", ordering="created_at")
    def created_display(self, obj: Job) -> str:
        return when(obj.created_at)

    @admin.display(description="Finished", ordering="finished_at")
    def finished_display(self, obj: Job) -> str:
        return live_time(obj, "finished_at")

    # --- The page, its actions and the bulk actions ---------------------------------

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Jobs", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        context = {**(extra_context or {})}
        if job is not None:
            may_act = request.user.has_perm("offload.change_job")
            context.update(
                title=f"{job.kind} #{job.pk}",
                subtitle=None,
                can_retry=may_act and job.status in RETRYABLE,
                can_cancel=may_act and job.status in CANCELLABLE,
            )
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self):
        own = [
            path("<int:object_id>/retry/", self.admin_site.admin_view(self.retry_view), name="offload_job_retry"),
            path("<int:object_id>/cancel/", self.admin_site.admin_view(self.cancel_view), name="offload_job_cancel"),
        ]
        return own + super().get_urls()

    def retry_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """POST: run this failed or cancelled job again."""
        return self._one(request, object_id, actions.retry_job, "queued again", confirm=False)

    def cancel_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """GET: what cancelling this job means. POST: cancel it."""
        return self._one(request, object_id, actions.cancel_job, "cancelled", confirm=True)

    def _one(self, request: HttpRequest, object_id: int, action, verb: str, *, confirm: bool) -> HttpResponse:
        if not request.user.has_perm("offload.change_job"):
            return HttpResponseForbidden("You may not act on jobs.")
        job = get_object_or_404(Job, pk=object_id)
        page = reverse("admin:offload_job_change", args=[job.pk])
        if request.method != "POST":
            if not confirm:
                return HttpResponseRedirect(page)
            return confirmation(
                self,
                request,
                title=f"Cancel {job.kind} #{job.pk}?",
                question="A queued job is cancelled at once; a running job's worker is asked to stop "
                "(a running ffmpeg is killed and its partial output removed).",
                jobs=[job],
                count=1,
                button="Yes, cancel it",
                back=page,
            )
        try:
            job = action(request.user, job)
        except (JobConflict, IdempotencyKeyReused) as exc:
            self.message_user(request, str(exc), messages.WARNING)
        else:
            self.message_user(request, format_html("Job {} {}.", job_link(job), verb), messages.SUCCESS)
        return HttpResponseRedirect(page)

    def _each(self, request, queryset, action, verb: str) -> None:
        done, refused = [], []
        for job in queryset:
            try:
                done.append(action(request.user, job))
            except (JobConflict, IdempotencyKeyReused) as exc:
                refused.append(str(exc))
        if done:
            self.message_user(
                request,
                format_html("{} job{} {}: {}", len(done), "s" if len(done) != 1 else "", verb, job_links(done)),
                messages.SUCCESS,
            )
        for reason in refused[:10]:
            self.message_user(request, reason, messages.WARNING)

    def _confirm_bulk(self, request, queryset, action_name: str, title: str, question: str, button: str):
        count = queryset.count()
        return confirmation(
            self,
            request,
            title=title.format(count=count, s="s" if count != 1 else ""),
            question=question,
            jobs=list(queryset.order_by("-id")[:PREVIEW_ROWS]),
            count=count,
            button=button,
            back=request.get_full_path(),
            hidden=[("action", action_name), ("post", "yes")]
            + [(helpers.ACTION_CHECKBOX_NAME, pk) for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)]
            + ([("select_across", "1")] if request.POST.get("select_across") == "1" else []),
            form_action="",
        )

    @admin.action(description="Retry selected jobs…", permissions=["change"])
    def retry_jobs(self, request, queryset):
        if request.POST.get("post") != "yes":
            return self._confirm_bulk(
                request,
                queryset,
                "retry_jobs",
                "Retry {count} job{s}?",
                "Failed and cancelled jobs run again; the others are left as they are.",
                "Yes, retry them",
            )
        self._each(request, queryset, actions.retry_job, "queued again")
        return None

    def has_purge_permission(self, request) -> bool:
        """Deleting finished jobs: the job delete permission (the page's own Delete stays off)."""
        return request.user.has_perm("offload.delete_job")

    @admin.action(description="Delete selected finished jobs…", permissions=["purge"])
    def delete_finished_jobs(self, request, queryset):
        if request.POST.get("post") != "yes":
            return self._confirm_bulk(
                request,
                queryset.filter(status__in=FINISHED_STATUSES),
                "delete_finished_jobs",
                "Delete {count} finished job{s}?",
                "Finished jobs are deleted with their timeline and attempts; queued and running ones are left "
                "as they are. This cannot be undone.",
                "Yes, delete them",
            )
        deleted = actions.delete_finished_jobs(request.user, queryset)
        self.message_user(request, f"Deleted {deleted} finished job{'s' if deleted != 1 else ''}.", messages.SUCCESS)
        return None

    @admin.action(description="Cancel selected jobs…", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        if request.POST.get("post") != "yes":
            return self._confirm_bulk(
                request,
                queryset,
                "cancel_jobs",
                "Cancel {count} job{s}?",
                "Queued jobs are cancelled at once and running ones are asked to stop; finished jobs are left "
                "as they are.",
                "Yes, cancel them",
            )
        self._each(request, queryset, actions.cancel_job, "cancelled")
        return None


def _holds(obj: Job) -> waiting.Holds | None:
    """The row's kind's hold as the list's query read it (JobAdmin.get_queryset); None elsewhere."""
    if not hasattr(obj, "hold_running"):
        return None
    hold = None
    if obj.hold_paused is not None:
        hold = {"paused": obj.hold_paused, "concurrency": obj.hold_cap, "running": obj.hold_running}
    return waiting.Holds.known(obj.kind, hold)


def register() -> None:
    """Put these pages on the admin site (from OffloadConfig.ready())."""
    admin.site.register(Job, JobAdmin)
    admin.site.register(JobEvent, JobEventAdmin)
    hide_empty_task_tables()


def hide_empty_task_tables() -> None:
    """Take django-q2's Successful and Failed tasks off the admin.

    They stay empty: the cluster keeps no results (save_limit -1, ack_failures off), and a job's
    outcome is its Job row. Listed, their "0" reads as "nothing ever ran or failed".
    """
    from django_q.models import Failure, Success

    for model in (Success, Failure):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
