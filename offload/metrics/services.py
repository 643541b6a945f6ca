"""Whether Redis answers, and how many django-q2 workers report in, read at scrape time."""

import logging
from collections.abc import Iterator

from django_q.conf import Conf
from django_q.status import Stat
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from offload.lib.redis_state import ping_both

log = logging.getLogger(__name__)


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
        yield GaugeMetricFamily(
            "offload_workers_alive",
            "django-q2 worker processes of live clusters, as their clusters last reported.",
            value=sum(len(stat.workers) for stat in clusters),
        )
        yield GaugeMetricFamily("offload_clusters_alive", "django-q2 clusters reporting in.", value=len(clusters))
