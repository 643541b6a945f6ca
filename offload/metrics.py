"""Offload's Prometheus series: every metric object lives here, with the helpers that emit them.

Web and worker processes each write their samples to files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode; config/settings.py points every process at the
folder before prometheus_client is imported). A scrape of /metrics sums the files of every
process, dead ones included, so a counter never goes backwards when a worker is recycled.
The queue's depth and age are not counted at all: they are read from the database at
scrape time, so they are right whichever process enqueued or ran what.
"""

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import psutil
from django.db import DatabaseError, transaction
from django.db.backends.signals import connection_created
from django.utils import timezone
from django_prometheus.db import metrics as db_metrics
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

# The search sync's series are defined beside it; re-exported so this module names them all.
from search.metrics import SEARCH_FALLBACKS, SYNC_LAG

log = logging.getLogger(__name__)

# The classic text format, as prometheus_client's own exporter serves it: every Prometheus
# reads it, and Offload's names need nothing newer.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

__all__ = [
    "CONTENT_TYPE",
    "JOBS_ENQUEUED",
    "JOBS_FINISHED",
    "JOB_DURATION",
    "JOB_QUEUE_WAIT",
    "RATELIMIT_DECISIONS",
    "SEARCH_FALLBACKS",
    "SYNC_LAG",
    "WS_CONNECTIONS",
]

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
RATELIMIT_DECISIONS = Counter(
    "offload_ratelimit_decisions_total",
    "Rate-limit answers, by scope and decision (allowed or denied).",
    ["scope", "decision"],
)
# livesum: the sum over live processes; a dead process's connections are gone with it.
WS_CONNECTIONS = Gauge(
    "offload_ws_connections",
    "Open websocket connections.",
    multiprocess_mode="livesum",
)


def multiprocess_dir() -> str | None:
    """The folder the processes write their samples to, when in multiprocess mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


if multiprocess_dir() and values.ValueClass.__name__ != "MmapedValue":
    # Something imported prometheus_client before the settings set the folder: this
    # process's samples stay in memory and no scrape will ever see them.
    log.error("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set; this process is not counted")


# --- The database ---------------------------------------------------------------------
# django-prometheus' database series (django_db_*), fed by an execute wrapper rather than
# its backend engines, so DATABASES keeps Django's own engines. The job spine imports this
# module, and the admin imports the spine during setup, so every process connects this
# receiver before its first query.


def _observe_query(execute, sql, params, many, context):
    connection = context["connection"]
    alias, vendor = connection.alias, connection.vendor
    count = len(params) if many and hasattr(params, "__len__") else 1
    db_metrics.execute_total.labels(alias, vendor).inc(count)
    if many:
        db_metrics.execute_many_total.labels(alias, vendor).inc(count)
    try:
        with db_metrics.query_duration_seconds.labels(alias, vendor).time():
            return execute(sql, params, many, context)
    except Exception as exc:
        db_metrics.errors_total.labels(alias, vendor, type(exc).__name__).inc()
        raise


def _instrument_connection(sender, connection, **kwargs) -> None:
    db_metrics.connections_total.labels(connection.alias, connection.vendor).inc()
    # The wrapper list belongs to the connection handler, which outlives reconnects.
    if _observe_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_observe_query)


connection_created.connect(_instrument_connection, dispatch_uid="offload.metrics.database")


# --- Emitting -----------------------------------------------------------------------
# Job series are emitted when the transition's transaction commits: a rolled-back
# enqueue or finish never happened, and must not be counted.


def job_enqueued(kind: str) -> None:
    """Count a job entering the queue, once the caller's transaction commits."""
    transaction.on_commit(lambda: JOBS_ENQUEUED.labels(kind=kind).inc(), robust=True)


def job_started(job) -> None:
    """Observe how long a claimed attempt waited in the queue once due, once the claim commits."""
    if job.started_at is None:
        return
    kind, wait = job.kind, max(0.0, (job.started_at - job.queued_at).total_seconds())
    transaction.on_commit(lambda: JOB_QUEUE_WAIT.labels(kind=kind).observe(wait), robust=True)


def job_finished(job) -> None:
    """Count a job's final status and observe its attempt's duration, once the change commits."""
    kind, status = job.kind, str(job.status)
    duration = None
    if job.started_at is not None and job.finished_at is not None:
        duration = max(0.0, (job.finished_at - job.started_at).total_seconds())

    def emit() -> None:
        JOBS_FINISHED.labels(kind=kind, status=status).inc()
        if duration is not None:
            JOB_DURATION.labels(kind=kind).observe(duration)

    transaction.on_commit(emit, robust=True)


def ratelimit_decision(scope: str, allowed: bool) -> None:
    """Count one rate-limit answer."""
    RATELIMIT_DECISIONS.labels(scope=scope, decision="allowed" if allowed else "denied").inc()


def ws_connected() -> None:
    """A websocket connection opened in this process."""
    WS_CONNECTIONS.inc()


def ws_disconnected() -> None:
    """A websocket connection of this process closed."""
    WS_CONNECTIONS.dec()


# --- Read at scrape time ------------------------------------------------------------


class QueueCollector(Collector):
    """Queue depth, running jobs and the oldest queued job's age per kind, read from the database."""

    def collect(self) -> Iterator[Metric]:
        from django.db.models import Count, Min

        from offload.kinds import KINDS
        from offload.models import ACTIVE_STATUSES, Job, JobStatus

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
        depth = dict.fromkeys(KINDS, 0)
        running = dict.fromkeys(KINDS, 0)
        oldest = dict.fromkeys(KINDS, 0.0)
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


class ServicesCollector(Collector):
    """Whether Redis answers, and how many django-q2 workers report in, at scrape time."""

    def collect(self) -> Iterator[Metric]:
        from django_q.conf import Conf
        from django_q.status import Stat

        from offload.redis_state import ping_both

        redis_up = GaugeMetricFamily(
            "offload_redis_up", "Whether Redis, the cache and the state instance alike, answered a PING (1) or not (0)."
        )
        try:
            ping_both()
        except (RedisError, OSError) as exc:
            log.warning("metrics: Redis did not answer: %s", exc)
            redis_up.add_metric([], 0)
            # django-q2 keeps its cluster stats in Redis: with Redis away they say nothing.
            yield redis_up
            return
        redis_up.add_metric([], 1)
        yield redis_up
        clusters = [stat for stat in Stat.get_all() if stat.status != Conf.STOPPED]
        yield GaugeMetricFamily(
            "offload_workers_alive",
            "django-q2 worker processes of live clusters, as their clusters last reported.",
            value=sum(len(stat.workers) for stat in clusters),
        )
        yield GaugeMetricFamily("offload_clusters_alive", "django-q2 clusters reporting in.", value=len(clusters))


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def forget_dead_processes(path: str) -> None:
    """Drop the live gauges of processes that died without saying so (a SIGKILL, a crash)."""
    for entry in Path(path).iterdir():
        match = _LIVE_GAUGE_FILE.match(entry.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), path)
        elif entry.suffix == ".db" and _is_empty_file_of_dead_process(entry):
            # A process killed while creating its file leaves it empty, and one empty file
            # makes every scrape fail; it held no samples, so nothing is lost.
            entry.unlink(missing_ok=True)


def _is_empty_file_of_dead_process(entry: Path) -> bool:
    pid = entry.stem.rpartition("_")[2]
    try:
        return entry.stat().st_size == 0 and pid.isdigit() and not psutil.pid_exists(int(pid))
    except FileNotFoundError:
        return False


class _Everything(Collector):
    """The process's own default registry, outside multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape() -> bytes:
    """The text exposition of every process's series plus the ones read at scrape time."""
    path = multiprocess_dir()
    if path:
        forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry = CollectorRegistry()
        registry.register(_Everything())
    registry.register(QueueCollector())
    registry.register(ServicesCollector())
    return generate_latest(registry)
