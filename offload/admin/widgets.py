"""What the admin's pages share: job status badges and progress bars, and the actions of the registered kinds."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin import SimpleListFilter, helpers
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from offload import actions, audit
from offload import permissions as rules
from offload.jobs import kinds, waiting
from offload.models import Job


def report_queued(modeladmin, request, outcomes: list[tuple[Job, bool]]) -> None:
    audit.log_job_action(request.user, [job for job, created in outcomes if created], "Queued.", added=True)
    queued = sum(1 for _, created in outcomes if created)
    already = len(outcomes) - queued
    text = f"{queued} job{'s' if queued != 1 else ''} queued."
    if already:
        text += f" {already} already active."
    # The message links every job it speaks of, new or already active.
    jobs = [job for job, _ in outcomes]
    modeladmin.message_user(
        request, format_html("{} Job{}: {}", text, "s" if len(jobs) != 1 else "", job_links(jobs)), messages.SUCCESS
    )


# A message names at most this many jobs; the rest are counted.
LINKED_JOBS = 10


def job_link(job: Job) -> str:
    """A link to the job's page, "#12" (plain text on a site without the job pages)."""
    try:
        return format_html('<a href="{}">#{}</a>', reverse("admin:offload_job_change", args=[job.pk]), job.pk)
    except NoReverseMatch:
        return format_html("#{}", job.pk)


def job_links(jobs: list[Job]) -> str:
    """Links to the jobs' pages, "#12, #13 and 4 more", for a message."""
    shown = format_html_join(", ", "{}", ((job_link(j),) for j in jobs[:LINKED_JOBS]))
    more = len(jobs) - LINKED_JOBS
    return format_html("{}{}.", shown, format_html(" and {} more", more) if more > 0 else "")


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


def status_badge(job: Job) -> str:
    """The status as a coloured badge that says it in words too (styled by offload/admin.css)."""
    return format_html(
        '<span class="offload-status offload-status-{}" data-job="{}">{}</span>', job.status, job.pk, job.status
    )


def heartbeat_cell(job: Job, now: datetime | None = None) -> str:
    """A running job's heartbeat age ("4 s ago"), and a "worker lost" badge once it missed three beats.

    live.js ticks the age between reads and shows the badge when the age passes data-lost-after.
    It carries no data-job: the job list patches a cell's data-job elements in place, one for one.
    """
    now = now or timezone.now()
    age = waiting.heartbeat_age(job, now)
    if age is None:
        return "—"
    lost = waiting.worker_lost(job, now)
    return format_html(
        '<span class="offload-heartbeat" data-beat-of="{}" data-heartbeat-at="{}" data-lost-after="{}"'
        ' title="The worker beats every {} while it runs; after {} without a beat another worker takes the job'
        ' over."><span class="offload-heartbeat-age">heartbeat {} ago</span>'
        ' <span class="offload-lost"{}>worker lost</span></span>',
        job.pk,
        job.heartbeat_at.isoformat(),
        waiting.LOST_AFTER_BEATS * waiting.heartbeat_interval(),
        duration(waiting.heartbeat_interval()),
        duration(settings.OFFLOAD_JOB_STALE_SECONDS),
        duration(age.total_seconds()),
        "" if lost else mark_safe(" hidden"),
    )


def waiting_note(job: Job, holds: "waiting.Holds | None" = None) -> str:
    """Why a queued job waits, as a small line under its status; "" when it waits only its turn."""
    reason = waiting.waiting_reason(job, holds)
    if not reason:
        return ""
    return format_html('<span class="offload-waiting">{}</span>', reason)


def when(value: datetime | None) -> str:
    """A time as the admin writes every time: "2026-05-01 08:55:03 UTC", in a <time> element."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}">{}</time>', local.isoformat(), f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"
    )


def live_time(job: Job, field: str) -> str:
    """A job's time that live.js keeps current from the websocket (started_at, finished_at)."""
    value = getattr(job, field)
    return format_html(
        '<span class="offload-field" data-job="{}" data-field="{}">{}</span>', job.pk, field, when(value)
    )


def live_field(job: Job, field: str, text: Any, title: str = "") -> str:
    """A job's value that live.js keeps current from the websocket (attempts, error)."""
    return format_html(
        '<span class="offload-field" data-job="{}" data-field="{}" title="{}">{}</span>', job.pk, field, title, text
    )


def duration(seconds: float | None) -> str:
    """Seconds as a person reads them: "850 ms", "42 s", "3 min 5 s", "2 h 4 min", "3 d 2 h"."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = int(seconds)
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if whole >= size:
            rest = (whole % size) // small_size
            return f"{whole // size} {unit}" + (f" {rest} {small}" if rest else "")
    return f"{whole} s"


def size(n: int | None) -> str:
    """Bytes with a unit: "812 B", "4.2 MB", "1.37 GB" (decimal units, as file managers show)."""
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1000
    return f"{n} B"


def bitrate(bits_per_second: int | None) -> str:
    """A bitrate with its unit: "600 b/s", "128 kb/s", "4.5 Mb/s"; "—" when unknown."""
    if not bits_per_second:
        return "—"
    if bits_per_second >= 1_000_000:
        return f"{bits_per_second / 1_000_000:.3g} Mb/s"
    if bits_per_second < 1000:
        return f"{bits_per_second} b/s"  # never "0 kb/s"
    return f"{bits_per_second / 1000:.0f} kb/s"


def wait_seconds(job: Job, now: datetime) -> float | None:
    """How long the current (or last) attempt waited in the queue before a worker took it."""
    if job.started_at is not None and job.started_at >= job.queued_at:
        return (job.started_at - job.queued_at).total_seconds()
    if job.status == "queued":
        # A job in a backoff is due later: it has not waited yet.
        return max(0.0, (now - job.queued_at).total_seconds())
    return None


def attempt_seconds(started_at: datetime, ended_at: datetime | None, now: datetime) -> float:
    """How long one attempt ran: from its start to its end, or until now while it runs.

    The one definition of a run's time: an attempt's "Took" and its job's "Ran" both come from it.
    """
    return max(0.0, ((ended_at or now) - started_at).total_seconds())


def run_seconds(job: Job, now: datetime) -> float | None:
    """How long the job's last attempt ran (that attempt's "Took"): to its end, or until now while it runs.

    Not simply finished_at - started_at: a job deferred or in a backoff keeps its last start, so
    cancelling it later would count the wait as running. The job list and page read the last
    attempt's end with the row (`last_attempt_ended_at`, JobAdmin.get_queryset).
    """
    if job.started_at is None or job.status == "queued":
        return None
    if job.status == "running":
        return attempt_seconds(job.started_at, None, now)
    ended = getattr(job, "last_attempt_ended_at", None) or job.finished_at
    if ended is None or ended < job.started_at:
        return None
    return attempt_seconds(job.started_at, ended, now)


class JobActionsMixin:
    """One admin action per kind registered on this model's target type, for whoever may ask for it."""

    def get_actions(self, request):
        found = super().get_actions(request)
        if not request.user.has_perm(rules.REQUEST_JOB.permission):
            return found
        for kind in kinds.requestable(self.model.JOB_TARGET_TYPE):
            if kind.may_request(request.user):
                found[kind.action] = (_job_action(kind), kind.action, kind.label or kind.name)
        return found

    def job_action_names(self) -> list[str]:
        return [kind.action for kind in kinds.requestable(self.model.JOB_TARGET_TYPE)]

    def job_buttons(self, request) -> list[dict[str, Any]]:
        """The kinds this user may ask for on one object's page, as buttons (the same actions as the list's)."""
        if not request.user.has_perm(rules.REQUEST_JOB.permission):
            return []
        return [
            {"action": kind.action, "label": kind.label or kind.name, "asks": bool(kind.params)}
            for kind in kinds.requestable(self.model.JOB_TARGET_TYPE)
            if kind.may_request(request.user)
        ]


def _job_action(kind: kinds.JobKind):
    def action(modeladmin, request, queryset):
        if kind.params and not request.POST.get("confirm"):
            return _ask_for_params(modeladmin, request, queryset, kind)
        given = {choice.name: request.POST.get(choice.name, "") for choice in kind.params}
        outcomes = []
        for target in queryset:
            try:
                outcomes.append(actions.request_job(request.user, kind.name, target, given))
            except ValueError as exc:
                modeladmin.message_user(request, f"{target}: {exc}", messages.ERROR)
        if outcomes:
            report_queued(modeladmin, request, outcomes)
        return _back_to_page(request)

    action.__name__ = kind.action
    return action


def _back_to_page(request) -> HttpResponseRedirect | None:
    """Back to the page a button was pressed on (an object's page, `next`); None: the list, as Django does."""
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(back)
    return None


def _ask_for_params(modeladmin, request, queryset, kind: kinds.JobKind):
    """An intermediate page: one choice per parameter, then one job per selected row."""
    params = [
        {
            "name": choice.name,
            "help_text": choice.help_text,
            "choices": [(value, choice.describe(value) if choice.describe else value) for value in choice.choices()],
            "selected": request.POST.get(choice.name, ""),
        }
        for choice in kind.params
    ]
    return TemplateResponse(
        request,
        "admin/offload/job_params_confirm.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": kind.label.rstrip("…") or kind.name,
            "kind": kind,
            "params": params,
            "items": queryset,
            "count": queryset.count(),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": modeladmin.model._meta,
            "next": request.POST.get("next", ""),
        },
    )


class CappedCountPaginator(Paginator):
    """A paginator that counts at most CAP rows: a large list's page costs the same however long the table.

    The page numbers stop at the cap; the list says "more than N" (admin/offload/job/pagination.html).
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        # COUNT(*) over a LIMITed subquery: reads at most CAP + 1 index entries.
        return self.object_list[: self.CAP + 1].count()


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
