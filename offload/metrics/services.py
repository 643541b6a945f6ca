"""Whether Redis answers, and how many django-q2 workers of each lane report in, read at scrape time."""

import logging
import os
import socket
from collections.abc import Iterator

from django.conf import settings
from django_q.conf import Conf
from django_q.status import Stat
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from offload.lib.redis_state import key, ping_both, state_redis

log = logging.getLogger(__name__)

# host:pid → lane of every worker django-q2 spawned. A cluster's stat lists its workers' pids
# but not its name (its lane), so each worker says which lane it serves when it starts.
WORKER_LANES = "worker-lanes"
WORKER_LANES_TTL = 7 * 24 * 3600


def record_worker_lane(sender=None, **kwargs) -> None:
    """django-q2's post_spawn, in each new worker process: note this worker's lane."""
    lanes = {queue: lane for lane, queue in settings.OFFLOAD_LANES.items()}
    lane = lanes.get(Conf.CLUSTER_NAME, Conf.CLUSTER_NAME)
    try:
        with state_redis().pipeline() as pipe:
            pipe.hset(key(WORKER_LANES), f"{socket.gethostname()}:{os.getpid()}", lane)
            pipe.expire(key(WORKER_LANES), WORKER_LANES_TTL)
            pipe.execute()
    except RedisError as exc:
        # Only the per-lane count needs it; the worker runs jobs all the same.
        log.warning("worker lane not recorded: %s", exc)


class ServicesCollector(Collector):
    """Whether Redis answers, and how many django-q2 workers report in, at scrape time."""

    def collect(self) -> Iterator[Metric]:
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
        lanes = {k.decode(): v.decode() for k, v in state_redis().hgetall(key(WORKER_LANES)).items()}
        alive = dict.fromkeys(settings.OFFLOAD_LANES, 0)
        for stat in clusters:
            for pid in stat.workers:
                # A worker not yet recorded (it is starting) counts as "unknown" for a moment.
                lane = lanes.get(f"{stat.host}:{pid}", "unknown")
                alive[lane] = alive.get(lane, 0) + 1
        workers = GaugeMetricFamily(
            "offload_workers_alive",
            "django-q2 worker processes of live clusters per lane, as their clusters last reported.",
            labels=["lane"],
        )
        for lane, count in sorted(alive.items()):
            workers.add_metric([lane], count)
        yield workers
        yield GaugeMetricFamily("offload_clusters_alive", "django-q2 clusters reporting in.", value=len(clusters))
