"""Which lane (django-q2 cluster name) each running cluster serves.

Every lane shares django-q2's stat list (its key comes from the site's `name`), and a stat
does not say which lane it belongs to. These brokers save, beside each stat and with the
same short expiry, the lane of the cluster that saved it, so workers can be counted per
lane and a dead lane beside a live one shows as 0.
"""

from time import sleep

from django.conf import settings
from django_q.brokers import get_broker
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.status import Stat

from offload.jobs import quiet
from offload.jobs.broker import LaneBroker


def _lane_key(stat_key: str) -> str:
    return f"{stat_key}:lane"


class LaneORMBroker(LaneBroker):
    """The ORM broker (people first, offload.jobs.broker); its cluster stats (in the state Redis) carry their lane."""

    def set_stat(self, key: str, value: str, timeout: int):
        saved = super().set_stat(key, value, timeout)
        if self.cache:
            self.cache.set(_lane_key(key), Conf.CLUSTER_NAME, timeout)
        return saved


class LaneRedisBroker(Redis):
    """The Redis broker; its cluster stats carry their lane, and a quiet cluster takes nothing (offload.jobs.quiet)."""

    def dequeue(self):
        if quiet.this_cluster_is_quiet():
            sleep(Conf.POLL)
            return None
        return super().dequeue()

    def set_stat(self, key: str, value: str, timeout: int):
        saved = super().set_stat(key, value, timeout)
        self.connection.set(_lane_key(key), Conf.CLUSTER_NAME, timeout)
        return saved


def lane_of(stat: Stat, broker, default: str) -> str:
    """The lane a cluster's stat belongs to; `default` for a cluster that did not say."""
    lane = broker.get_stat(_lane_key(Stat.get_key(stat.cluster_id)))
    if isinstance(lane, bytes):
        lane = lane.decode()
    return lane or default


def live_clusters_per_lane() -> dict[str, list[Stat]]:
    """Every lane (settings.OFFLOAD_LANES) with the stats of its clusters that report in and are not stopping.

    Every lane is a key, so a dead lane beside a live one shows as an empty list. A cluster
    whose queue is no declared lane is listed under its queue's name.
    """
    per_lane: dict[str, list[Stat]] = {lane: [] for lane in settings.OFFLOAD_LANES}
    lane_of_queue = {queue: lane for lane, queue in settings.OFFLOAD_LANES.items()}
    broker = get_broker()
    for stat in Stat.get_all(broker):
        if stat.status != Conf.STOPPED:
            queue = lane_of(stat, broker, default=settings.Q_CLUSTER["name"])
            per_lane.setdefault(lane_of_queue.get(queue, queue), []).append(stat)
    return per_lane


def cluster_stat(cluster_id: str) -> Stat | None:
    """The stat of the reporting cluster with this id (django-q2's cluster UUID), or None."""
    return next((stat for stat in Stat.get_all(get_broker()) if str(stat.cluster_id) == cluster_id), None)
