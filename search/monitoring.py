"""Search's state read at scrape time: the outbox backlog and whether Typesense answers."""

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from search import typesense as ts
from search.sync import backlog

log = logging.getLogger(__name__)


class SearchCollector(Collector):
    """offload_search_outbox_backlog and offload_search_up (registered in SearchConfig.ready())."""

    def collect(self) -> Iterator[Metric]:
        try:
            waiting, oldest = backlog()
        except DatabaseError as exc:
            log.warning("metrics: the search outbox could not be read: %s", exc)
        else:
            yield GaugeMetricFamily(
                "offload_search_outbox_backlog", "Index writes waiting in the search outbox.", value=waiting
            )
            yield GaugeMetricFamily(
                "offload_search_outbox_oldest_age_seconds",
                "Age of the oldest index write waiting (0 when none).",
                value=oldest,
            )
        yield GaugeMetricFamily(
            "offload_search_up", "Whether Typesense answered its health check (1) or not (0).", value=_up()
        )


def _up() -> int:
    client = ts.read_client()
    if client is None:
        return 0
    try:
        return int(bool(client.operations.is_healthy()))
    except ts.ERRORS as exc:
        log.warning("metrics: Typesense did not answer: %s", exc)
        return 0
