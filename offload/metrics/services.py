"""Whether Redis answers, and how many django-q2 workers report in, read at scrape time."""

import logging
from collections.abc import Iterator

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from offload.jobs import live_clusters_per_lane
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
        workers = GaugeMetricFamily(
            "offload_workers_alive",
            "django-q2 worker processes of a lane's live clusters, as their clusters last reported.",
            labels=["lane"],
        )
        clusters = GaugeMetricFamily(
            "offload_clusters_alive", "django-q2 clusters reporting in, per lane.", labels=["lane"]
        )
        # Per lane, every lane always: a dead lane beside a live one must show as 0, not hide in a sum.
        per_lane = live_clusters_per_lane()
        for lane, alive in per_lane.items():
            workers.add_metric([lane], sum(len(stat.workers) for stat in alive))
            clusters.add_metric([lane], len(alive))
        yield workers
        yield clusters


def lanes() -> list[str]:
    """The worker lanes (default, media, search), each a django-q2 cluster named after its queue."""
    return list(settings.OFFLOAD_LANES)
