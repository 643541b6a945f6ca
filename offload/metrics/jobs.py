"""The job series, counted as the spine announces each committed change, and the queue read at scrape time.

The queue's depth and age are not counted at all: they are read from the database at
scrape time, so they are right whichever process enqueued or ran what.
"""

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from offload.jobs import FINISH, FIRST_QUEUE, START, kinds, queue_rows
from offload.models import ACTIVE_STATUSES, Job, JobStatus

log = logging.getLogger(__name__)

# From a no-op (milliseconds) to a long transcode (hours).
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
# The ORM broker polls every 50 ms; a healthy queue starts work well within a second.
WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOBS_ENQUEUED = Counter(
    "offload_jobs_enqueued_total",
    "Jobs put in the queue: created, or retried by a user.",
    ["kind"],
)
JOBS_FINISHED = Counter(
    "offload_jobs_finished_total",
    "Jobs that reached a final status (succeeded, failed or cancelled).",
    ["kind", "status"],
)
JOB_DURATION = Histogram(
    "offload_job_duration_seconds",
    "Seconds from an attempt's start to its job's final status.",
    ["kind"],
    buckets=DURATION_BUCKETS,
)
JOB_QUEUE_WAIT = Histogram(
    "offload_job_queue_wait_seconds",
    "Seconds from when an attempt became due (enqueue, retry, end of a backoff) to its start.",
    ["kind"],
    buckets=WAIT_BUCKETS,
)

# The job series are counted at the spine's one seam, job_event_committed (subscribed from
# OffloadConfig.ready()): only committed changes are announced, so a rolled-back enqueue or
# finish never happened and is not counted.


def on_job_event(sender, event, **kwargs) -> None:
    """job_event_committed: count a first queue and a final status, time a start's wait and an attempt's run."""
    job, moment = event.job, getattr(event, "moment", None)
    if moment == FIRST_QUEUE:
        JOBS_ENQUEUED.labels(kind=job.kind).inc()
    elif moment == START and job.started_at is not None:
        wait = max(0.0, (job.started_at - job.queued_at).total_seconds())
        JOB_QUEUE_WAIT.labels(kind=job.kind).observe(wait)
    elif moment == FINISH:
        JOBS_FINISHED.labels(kind=job.kind, status=str(event.event)).inc()
        if job.started_at is not None and job.finished_at is not None:
            duration = max(0.0, (job.finished_at - job.started_at).total_seconds())
            JOB_DURATION.labels(kind=job.kind).observe(duration)


class QueueCollector(Collector):
    """Queue depth, running jobs and the oldest queued job's age per kind, read from the database."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("offload_database_up", "Whether the scrape could read the job table (1) or not (0).")
        try:
            # One grouped query over the active rows; the (status, kind) index serves it.
            rows = list(
                Job.objects.filter(status__in=ACTIVE_STATUSES)
                .values_list("status", "kind")
                .annotate(n=Count("pk"), oldest=Min("queued_at"))
                .order_by()
            )
        except DatabaseError as exc:
            log.warning("metrics: the job table could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = timezone.now()
        depth = dict.fromkeys(kinds.names(), 0)
        running = dict.fromkeys(kinds.names(), 0)
        oldest = dict.fromkeys(kinds.names(), 0.0)
        for status, kind, n, first in rows:
            if status == JobStatus.QUEUED:
                depth[kind] = n
                oldest[kind] = max(0.0, (now - first).total_seconds())
            else:
                running[kind] = n
        for name, doc, data in (
            ("offload_queue_depth", "Jobs waiting in the queue.", depth),
            ("offload_queue_oldest_age_seconds", "Longest wait of a due queued job (0 when none).", oldest),
            ("offload_jobs_running", "Jobs being run by a worker.", running),
        ):
            family = GaugeMetricFamily(name, doc, labels=["kind"])
            for kind, value in sorted(data.items()):
                family.add_metric([kind], value)
            yield family
        yield from _drain_forecast()


def _drain_forecast() -> Iterator[Metric]:
    """offload_queue_drain_seconds{kind}: when each kind's queue empties at the last 15 minutes' rate."""
    try:
        rows = queue_rows()
    except DatabaseError as exc:
        log.warning("metrics: the drain forecast could not be read: %s", exc)
        return
    family = GaugeMetricFamily(
        "offload_queue_drain_seconds",
        "Seconds until the kind's queue empties at the last 15 minutes' finish rate (+Inf: not draining).",
        labels=["kind"],
    )
    for row in rows:
        seconds = row["drain_seconds"]
        family.add_metric([row["kind"]], float("inf") if seconds is None else seconds)
    yield family
