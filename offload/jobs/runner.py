"""What a django-q2 worker runs: claim a job, run its kind's handler, record the outcome."""

import logging
import os
import threading
import time
import traceback

from django.apps import apps
from django.db import connection, models
from django_q.exceptions import TimeoutException
from redis.exceptions import RedisError

from offload import logs
from offload.jobs import cancel_flags, control, delivery, liveness, prepared, reaper
from offload.jobs import transitions as jobs
from offload.jobs.errors import JobCancelled, JobDeferred, JobFailed, JobLost, TransientJobError
from offload.jobs.kinds import get_kind
from offload.jobs.waiting import heartbeat_interval
from offload.models import JOB_TEXT_LIMIT, Job

log = logging.getLogger(__name__)

# The job's row takes a handler's progress at most once a second: a page or GET reads it.
PROGRESS_INTERVAL = 1.0
# The event log (and so the websocket) takes it at most this often. A resuming client needs
# only the latest progress, which the next event or the job's row gives it; one event a second
# made a one-hour transcode 3,600 rows of log, drowning its retries, cancels and lost attempts.
PROGRESS_EVENT_INTERVAL = 5.0


class JobRun:
    """The handle a handler gets: progress reports and cancellation."""

    # How often a long-running step looks at the shared cancel flag.
    CANCEL_POLL_INTERVAL = 0.25

    def __init__(self, job: Job) -> None:
        self.job = job
        self.cancel_event = threading.Event()
        self._last_write = 0.0
        self._last_event: float | None = None
        self._last_poll = 0.0

    def progress(self, percent: float | None, *, force: bool = False, partial_result: dict | None = None) -> None:
        """Report progress (0–100); written at most once a second. Raises JobCancelled."""
        self.check_cancelled()
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_INTERVAL:
            return
        self._last_write = now
        value = None if percent is None else round(max(0.0, min(100.0, percent)), 1)
        # The first report, a forced one and the last one are logged; the rest every few seconds.
        announce = (
            force or self._last_event is None or value == 100.0 or now - self._last_event >= PROGRESS_EVENT_INTERVAL
        )
        if announce:
            self._last_event = now
        if not liveness.heartbeat(self.job, progress=value, partial_result=partial_result, announce=announce):
            raise JobLost(f"job {self.job.pk} was taken from this attempt")
        if liveness.cancel_requested(self.job):
            self.cancel_event.set()
            self.check_cancelled()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled()

    def should_stop(self) -> bool:
        """Whether a cancel was requested; polls the shared flag a few times a second."""
        if self.cancel_event.is_set():
            return True
        now = time.monotonic()
        if now - self._last_poll >= self.CANCEL_POLL_INTERVAL:
            self._last_poll = now
            try:
                # The flag is a fast hint; the row is the record (a flag left from an earlier
                # attempt, before a retry, must not cancel this one).
                if cancel_flags.cancel_flagged(self.job.pk) and liveness.cancel_requested(self.job):
                    self.cancel_event.set()
            except RedisError as exc:
                # The heartbeat still sees the database's record of the request.
                log.warning("cancel flag unreadable for job %s: %s", self.job.pk, exc)
        return self.cancel_event.is_set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def record_log(self, lines: list[str]) -> None:
        """Keep the last lines of a tool's stderr (ffmpeg's) with the job, for its page."""
        Job.objects.filter(pk=self.job.pk).update(log_tail=bounded("\n".join(lines)))


def bounded(text: str) -> str:
    """The end of text, at most JOB_TEXT_LIMIT characters: where a log or traceback says what went wrong."""
    return text if len(text) <= JOB_TEXT_LIMIT else "…" + text[-(JOB_TEXT_LIMIT - 1) :]


def record_traceback(job: Job) -> None:
    """Keep the traceback of the exception being handled with the job, for its page."""
    Job.objects.filter(pk=job.pk).update(traceback=bounded(traceback.format_exc()))


class _Heartbeat(threading.Thread):
    """One thread per worker process keeps the current job's heartbeat fresh.

    A handler may spend minutes in one call (ffprobe, a big directory) without
    reporting progress; the reaper and redelivered tasks judge liveness by this beat.
    """

    def __init__(self, reaps: bool) -> None:
        super().__init__(name="offload-heartbeat", daemon=True)
        self._run: JobRun | None = None
        self._lock = threading.Lock()
        self._reaps = reaps

    def watch(self, run: JobRun | None) -> None:
        with self._lock:
            self._run = run

    def run(self) -> None:
        while True:
            time.sleep(heartbeat_interval())
            with self._lock:
                run = self._run
            try:
                if run is not None and liveness.heartbeat(run.job) and liveness.cancel_requested(run.job):
                    run.cancel_event.set()
                # Any live worker takes over a dead one's job within a beat of it going stale:
                # the reaper's schedule runs only once a minute.
                if self._reaps:
                    reaper.requeue_lost_jobs()
            except Exception:
                log.exception("heartbeat%s failed", f" for job {run.job.pk}" if run else "")
            finally:
                # A beat every few seconds does not need a connection held open between
                # beats, and an idle one would outlive the worker's own.
                connection.close()


_heartbeat: _Heartbeat | None = None
_heartbeat_pid: int | None = None


def _heartbeat_thread(worker: bool = False) -> _Heartbeat:
    global _heartbeat, _heartbeat_pid
    # A forked worker does not inherit its parent's threads: start one per process.
    if _heartbeat is None or _heartbeat_pid != os.getpid():
        # Only a cluster's worker takes over other workers' lost jobs. A process that runs a
        # job in passing (a test, a benchmark's loop) beats for it and nothing else: a reaper
        # left running there would keep writing to its database after the job is done.
        _heartbeat = _Heartbeat(reaps=worker)
        _heartbeat.start()
        _heartbeat_pid = os.getpid()
    return _heartbeat


def on_worker_spawned(sender, proc_name: str = "", **kwargs) -> None:
    """django-q2's post_spawn: the worker's heartbeat thread starts now, not at its first job."""
    _heartbeat_thread(worker=True)


def execute(job_id: int) -> str:
    """The django-q2 task for every job kind. Safe to deliver more than once."""
    # A paused kind's job is parked, a capped one put back: neither spends an attempt.
    with delivery.running():
        job, why_not = prepared.on_live_connection(lambda: control.pick_up(job_id))
        if job is None:
            return why_not
        run = JobRun(job)
        beat = _heartbeat_thread()
        beat.watch(run)
        try:
            # Every line logged while the job runs names it (LOG_FORMAT=json: job_id, job_kind).
            with logs.bound(job_id=job.pk, job_kind=job.kind):
                return _run_handler(job, run)
        finally:
            beat.watch(None)


def target_models() -> dict[str, type[models.Model]]:
    """Each target type (a model's JOB_TARGET_TYPE) with its model, read from the installed models."""
    return {model.JOB_TARGET_TYPE: model for model in apps.get_models() if hasattr(model, "JOB_TARGET_TYPE")}


def load_target(job: Job) -> models.Model | None:
    """The job's target, read once for its handler (with the rows it points to); JobFailed when it is gone."""
    if not job.target_type:
        return None
    model = target_models()[job.target_type]
    target = model._default_manager.select_related().filter(pk=job.target_id).first()
    if target is None:
        raise JobFailed(f"The {model._meta.verbose_name} no longer exists.")
    return target


def _run_handler(job: Job, run: JobRun) -> str:
    spec = get_kind(job.kind)
    try:
        result = spec.handler(job, load_target(job), run)
    except JobCancelled:
        jobs.mark_cancelled(job)
        return "cancelled"
    except JobLost:
        return "lost"
    except JobFailed as exc:
        record_traceback(job)
        jobs.fail(job, str(exc) or type(exc).__name__)
        return "failed"
    except JobDeferred as exc:
        jobs.defer(job, str(exc), exc.delay)
        return "deferred"
    except TransientJobError as exc:
        record_traceback(job)
        jobs.fail_or_retry(job, str(exc), retry_after=exc.retry_after)
        return "retrying"
    except TimeoutException:
        record_traceback(job)
        jobs.fail(job, f"Timed out after {spec.timeout_for(job)} seconds.")
        return "timed out"
    except Exception as exc:
        log.exception("job %s (%s) raised", job.pk, job.kind)
        record_traceback(job)
        jobs.fail_or_retry(job, f"Unexpected error: {type(exc).__name__}: {exc}")
        return "error"
    jobs.succeed(job, result)
    return "succeeded"
