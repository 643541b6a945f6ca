"""Helpers for tests of search: run the search lane inline, and clean an index up."""

import pydoc

from django.conf import settings
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from search import typesense as ts


def drain_search_lane(max_tasks: int = 1000) -> int:
    """Run every task queued on the search lane, as its cluster would; answer how many ran."""
    broker = get_broker(settings.SEARCH_Q_CLUSTER)
    ran = 0
    while ran < max_tasks:
        batch = broker.dequeue()
        if not batch:
            return ran
        for ack_id, payload in batch:
            task = SignedPackage.loads(payload)
            pydoc.locate(task["func"])(*task["args"], **task["kwargs"])
            broker.acknowledge(ack_id)
            ran += 1
    raise AssertionError(f"the search lane did not drain within {max_tasks} tasks")


def drop_index(alias: str) -> None:
    """Delete an alias and every collection named after it."""
    client = ts.write_client()
    if client is None:
        return
    try:
        client.aliases[alias].delete()
    except ts.NotFound:
        pass
    for name in ts.collection_names(client):
        if name.startswith(f"{alias}_v"):
            ts.drop_collection(client, name)
