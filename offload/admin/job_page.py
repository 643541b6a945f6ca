"""A job's page: its fieldsets, and the fields only the page shows (attempts, times, what was asked, outcome, timeline).

JobAdmin (offload/admin/jobs.py) takes them as a mixin; the fields the page shares with the list
(status, progress, target, times) are JobAdmin's own.
"""

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from offload.admin import readable
from offload.admin.badges import heartbeat_cell, live_field, live_time
from offload.admin.formatting import attempt_seconds, duration, when
from offload.admin.timeline import TIMELINE_EVENTS, timeline
from offload.jobs import attempts
from offload.models import AttemptOutcome, Job, JobStatus


class JobPageFields:
    """The job page's layout and its own read-only fields."""

    fieldsets = [
        (None, {"fields": ["status_display", "progress_display", "kind", "target_link", "requested_by_display"]}),
        (
            "Attempts and times",
            {
                "fields": [
                    "attempts_summary",
                    "heartbeat_display",
                    "created_display",
                    "queued_display",
                    "started_display",
                    "finished_display",
                    "wait_display",
                    "run_display",
                    "cancel_display",
                ]
            },
        ),
        ("Every attempt", {"fields": ["attempt_history_display"]}),
        ("What was asked", {"fields": ["params_display", "then_display"]}),
        ("Outcome", {"fields": ["result_display", "error_text", "log_display", "traceback_display"]}),
        ("Timeline", {"fields": ["events"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [field for _, options in self.fieldsets for field in options["fields"]]

    @admin.display(description="Requested by")
    def requested_by_display(self, obj: Job) -> str:
        return obj.requested_by.get_username() if obj.requested_by else "— (the system)"

    @admin.display(description="Attempts")
    def attempts_summary(self, obj: Job) -> str:
        budget = format_html("{} of at most {}", live_field(obj, "attempts", obj.attempts), obj.max_attempts)
        runs = obj.attempt_history.count()
        if runs <= obj.attempts:
            return budget
        # A retry starts a fresh budget; the runs before it stay in the list below.
        return format_html("{} since the last retry; {} in all", budget, runs)

    @admin.display(description="Heartbeat")
    def heartbeat_display(self, obj: Job) -> str:
        return heartbeat_cell(obj)

    @admin.display(description="Attempts")
    def attempt_history_display(self, obj: Job) -> str:
        history = list(obj.attempt_history.all())
        last = history[-1].number if history else None
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    a.number,
                    when(a.started_at),
                    when(a.finished_at),
                    duration(attempt_seconds(a.started_at, a.finished_at, timezone.now())),
                    a.worker or "—",
                    format_html('<span class="offload-outcome offload-outcome-{}">{}</span>', a.outcome, a.outcome),
                    format_html(
                        "{}{}",
                        _once(obj, a.error) if a.number == last else a.error or "",
                        format_html(
                            '<details><summary>Last lines of its log</summary><pre class="offload-pre">{}</pre>'
                            "</details>",
                            a.log_tail,
                        )
                        if a.log_tail
                        else "",
                    )
                    or "—",
                )
                for a in history
            ),
        )
        if not rows:
            return mark_safe("—")
        return format_html(
            '<table class="offload-attempts"><thead><tr><th>#</th><th>Started</th><th>Ended</th><th>Took</th>'
            "<th>Worker (host/pid)</th><th>Outcome</th><th>Error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Queued (this attempt)")
    def queued_display(self, obj: Job) -> str:
        return when(obj.queued_at)

    @admin.display(description="Started")
    def started_display(self, obj: Job) -> str:
        return live_time(obj, "started_at")

    @admin.display(description="Cancel requested")
    def cancel_display(self, obj: Job) -> str:
        if obj.cancel_requested_at is None:
            return "—"
        who = obj.cancelled_by.get_username() if obj.cancelled_by else "the system"
        return format_html("{} by {}", when(obj.cancel_requested_at), who)

    @admin.display(description="Parameters")
    def params_display(self, obj: Job) -> str:
        return readable.mapping(obj.params)

    @admin.display(description="Then queues")
    def then_display(self, obj: Job) -> str:
        # Only what will still run: a pipeline's next stages follow a success, never a failure.
        if not obj.then:
            return "—"
        kinds = ", ".join(str(kind) for kind in obj.then)
        if obj.status == JobStatus.SUCCEEDED:
            return f"{kinds} (queued when it succeeded)"
        if obj.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            return f"nothing: it {obj.status}, so {kinds} will not be queued"
        return f"{kinds}, once it succeeds"

    @admin.display(description="Result")
    def result_display(self, obj: Job) -> str:
        # A running transcode's ETA was measured at its last progress write.
        return readable.mapping(obj.result, measured_at=obj.heartbeat_at) if obj.result is not None else "—"

    @admin.display(description="Error")
    def error_text(self, obj: Job) -> str:
        return format_html('<pre class="offload-pre" id="job-error">{}</pre>', obj.error) if obj.error else "—"

    @admin.display(description="Last lines of ffmpeg's stderr")
    def log_display(self, obj: Job) -> str:
        return format_html('<pre class="offload-pre">{}</pre>', obj.log_tail) if obj.log_tail else "—"

    @admin.display(description="Traceback (last failed attempt)")
    def traceback_display(self, obj: Job) -> str:
        return format_html('<pre class="offload-pre">{}</pre>', obj.traceback) if obj.traceback else "—"

    @admin.display(description="Events")
    def events(self, obj: Job) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (when(row.at), row.event, row.status, row.progress, _once(obj, row.note), row.seqs)
                for row in timeline(
                    obj.events.order_by("seq")[:TIMELINE_EVENTS],
                    obj.attempt_history.filter(outcome=AttemptOutcome.LOST, error=attempts.LOST_ERROR),
                )
            ),
        )
        if not rows:
            return mark_safe("—")
        return format_html(
            '<table class="offload-timeline"><thead><tr><th>At</th><th>Event</th><th>Status</th>'
            "<th>Progress</th><th>Note</th><th>Seq</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )


def _once(job: Job, text: str) -> str:
    """The failure message where the page prints it in full (Outcome › Error); a pointer there elsewhere."""
    if job.status == JobStatus.FAILED and text and text == job.error:
        return format_html('<a href="#job-error">{}</a>', "the Error below")
    return text
