"""How the admin writes times, durations, sizes and bitrates ("—" when there is none), and a job's wait and run times.

Every page writes a figure through one of these, so the job list, the job page, the dashboard and
live.js (which ticks durations the same way) agree.
"""

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html

from offload.models import Job


def when(value: datetime | None) -> str:
    """A time as the admin writes every time: "2026-05-01 08:55:03 UTC", in a <time> element."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}">{}</time>', local.isoformat(), f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"
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
