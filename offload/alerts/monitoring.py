"""The notification series: counted where deliveries are decided, and failing endpoints read at scrape time."""

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from offload.alerts.models import Agent, Endpoint

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "offload_notifications_total",
    "Notifications to people's endpoints by outcome: sent, failed (an attempt; it is retried), dead, limited, deduped.",
    ["agent", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "offload_notification_delivery_seconds",
    "Seconds one delivery attempt took, from the request to the endpoint's answer.",
    ["agent"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def init_series() -> None:
    """Export every (agent, outcome) at 0 from the start: a dashboard and an alert see 0, not nothing."""
    for agent in Agent.values:
        DELIVERY_LATENCY.labels(agent=agent)
        for outcome in ("sent", "failed", "dead", "limited", "deduped"):
            NOTIFICATIONS.labels(agent=agent, outcome=outcome)


def counted(agent: str, outcome: str, n: int = 1) -> None:
    NOTIFICATIONS.labels(agent=agent, outcome=outcome).inc(n)


class FailingEndpointsCollector(Collector):
    """How long the longest-failing endpoint that is not paused has failed, per agent (0 when none)."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "offload_notification_endpoint_failing_seconds",
            "Seconds since the longest-failing active endpoint of the agent last answered (0: none failing).",
            labels=["agent"],
        )
        try:
            rows = dict(
                Endpoint.objects.filter(paused=False, failing_since__isnull=False)
                .values_list("agent")
                .annotate(first=Min("failing_since"))
                .order_by()
            )
        except DatabaseError as exc:
            log.warning("metrics: the endpoint table could not be read: %s", exc)
            return
        now = timezone.now()
        for agent in Agent.values:
            first = rows.get(agent)
            family.add_metric([agent], max(0.0, (now - first).total_seconds()) if first else 0.0)
        yield family
