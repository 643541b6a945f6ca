"""A job's cells on the admin's pages: links, status badges, progress bars, heartbeats and live fields.

Each is HTML that live.js finds by its data-job (or data-beat-of) attribute and keeps current from
the websocket.
"""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from offload.admin.formatting import duration, when
from offload.jobs import waiting
from offload.models import Job

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
