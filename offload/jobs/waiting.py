"""Why a queued job is not running yet, and whether a running job's worker is still there.

One definition for every place that says it: the API's `waiting_reason` on a job, the job
list, the job page and the dashboard.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from offload.models import Job, JobStatus, QueueControl

# A running job whose heartbeat missed this many beats is shown as "worker lost" until another
# worker takes it over (at OFFLOAD_JOB_STALE_SECONDS, four beats).
LOST_AFTER_BEATS = 3


def heartbeat_interval() -> float:
    """Seconds between two beats of a running job: four beats fit in OFFLOAD_JOB_STALE_SECONDS."""
    return max(0.5, settings.OFFLOAD_JOB_STALE_SECONDS / 4)


def worker_lost(job: Job, now: datetime | None = None) -> bool:
    """Whether the running job's worker has missed enough beats to be presumed gone."""
    if job.status != JobStatus.RUNNING or job.heartbeat_at is None:
        return False
    age = ((now or timezone.now()) - job.heartbeat_at).total_seconds()
    return age > LOST_AFTER_BEATS * heartbeat_interval()


class Holds:
    """The kinds' holds and running counts, read once for a page of jobs (not once per row)."""

    controls: dict[str, QueueControl]
    running: dict[str, int]

    def __init__(self, kinds: Iterable[str]) -> None:
        kinds = set(kinds)
        self.controls = {c.kind: c for c in QueueControl.objects.filter(kind__in=kinds)}
        capped = [kind for kind, c in self.controls.items() if c.concurrency is not None]
        self.running = dict(
            Job.objects.filter(kind__in=capped, status=JobStatus.RUNNING)
            .values_list("kind")
            .annotate(n=Count("id"))
            .values_list("kind", "n")
        )

    @classmethod
    def known(cls, kind: str, hold: dict[str, Any] | None) -> "Holds":
        """The holds of one kind as a statement already read them ({"paused", "concurrency", "running"} or None)."""
        holds = cls.__new__(cls)
        holds.controls, holds.running = {}, {}
        if hold is not None:
            holds.controls[kind] = QueueControl(kind=kind, paused=hold["paused"], concurrency=hold["concurrency"])
            holds.running[kind] = hold["running"]
        return holds

    @classmethod
    def of(cls, job: Job) -> "Holds":
        """The holds a job carries (read with it, e.g. by the accept statement), or read now."""
        return getattr(job, "holds", None) or cls([job.kind])


def waiting_reason(job: Job, holds: Holds | None = None, now: datetime | None = None) -> str | None:
    """Why this queued job waits, in words ("paused: …", "capped: …", "backoff until …"); None when it does not."""
    if job.status != JobStatus.QUEUED:
        return None
    holds = holds or Holds.of(job)
    now = now or timezone.now()
    control = holds.controls.get(job.kind)
    if control is not None and control.paused:
        return f"paused: an operator paused {job.kind}"
    if job.queued_at > now:
        # A transient failure's backoff, or a deferral (a busy lock); its reason is the job's error.
        until = timezone.localtime(job.queued_at)
        why = f" ({job.error})" if job.error else ""
        return f"backoff until {until:%H:%M:%S} {until.tzname()}{why}"
    if control is not None and control.concurrency is not None:
        running = holds.running.get(job.kind, 0)
        if running >= control.concurrency:
            return f"capped: {running} of at most {control.concurrency} {job.kind} running"
    return None


def heartbeat_age(job: Job, now: datetime | None = None) -> timedelta | None:
    """How long since the running job's worker last beat; None when it is not running."""
    if job.status != JobStatus.RUNNING or job.heartbeat_at is None:
        return None
    return (now or timezone.now()) - job.heartbeat_at
