"""A three-node Typesense cluster behind the app: one node dies, search and index sync carry on."""

import uuid

import pytest
import requests

from offload.models import Library, MediaItem
from tests.support.cluster import wait_for
from tests.support.services import API_KEY

pytestmark = pytest.mark.slow


def search(client, q: str) -> dict:
    answer = client.get("/api/v1/search/", {"q": q})
    assert answer.status_code == 200, answer.content
    return answer.json()


def found_in_typesense(client, q: str) -> list[str]:
    """Titles Typesense (not the database fallback) finds for q."""
    answer = search(client, q)
    return [] if answer["degraded"] else [hit["title"] for hit in answer["hits"]]


def node_finds(node, alias: str, q: str) -> bool:
    """Whether this one node, asked directly, has a document matching q."""
    answer = requests.get(
        f"{node.url}/collections/{alias}/documents/search",
        params={"q": q, "query_by": "title"},
        headers={"X-TYPESENSE-API-KEY": API_KEY},
        timeout=5,
    )
    return answer.status_code == 200 and answer.json()["found"] > 0


def test_search_and_sync_carry_on_when_the_leader_dies(typesense_cluster, qcluster, alice, alice_api, settings):
    alias = f"scale{uuid.uuid4().hex[:10]}"
    settings.TYPESENSE_URL = typesense_cluster.url
    settings.TYPESENSE_API_KEY = API_KEY
    settings.SEARCH_ALIAS = alias
    # The search lane, configured with every node, as each worker host would be.
    lane = qcluster(
        Q_CLUSTER_NAME="search", TYPESENSE_URL=typesense_cluster.url, TYPESENSE_API_KEY=API_KEY,
        OFFLOAD_SEARCH_ALIAS=alias,
    )  # fmt: skip
    library = Library.objects.create(name="Films", path="/nowhere", owner=alice)
    MediaItem.objects.create(library=library, relative_path="a.mkv", title="Aardvark Chronicles", kind="movie")
    wait_for(lambda: found_in_typesense(alice_api, "aardvark"), timeout=30, what="the first sync", cluster=lane)
    # Followers apply the leader's log a moment later; reads may go to any node.
    nodes = typesense_cluster.live_nodes()
    wait_for(lambda: all(node_finds(node, alias, "aardvark") for node in nodes), timeout=10, what="replication")

    # The worst node to lose: the leader, through which every write goes.
    leader = typesense_cluster.leader()
    leader.kill()

    # Reads never stop: the survivors answer at once (the client skips the dead node).
    assert found_in_typesense(alice_api, "aardvark") == ["Aardvark Chronicles"]
    # Writes resume once the survivors have elected a new leader (one Raft election).
    typesense_cluster.wait_for_leader()
    MediaItem.objects.create(library=library, relative_path="z.mkv", title="Zebra Diaries", kind="movie")
    wait_for(lambda: found_in_typesense(alice_api, "zebra"), timeout=30, what="a sync after the kill", cluster=lane)
    # Replicated: each surviving node holds the document written after the kill.
    survivors = typesense_cluster.live_nodes()
    assert len(survivors) == 2
    wait_for(lambda: all(node_finds(node, alias, "zebra") for node in survivors), timeout=10, what="replication")
    # Reads go round the survivors: each of a few answers comes from Typesense, complete.
    for _ in range(4):
        assert found_in_typesense(alice_api, "zebra") == ["Zebra Diaries"]
        assert found_in_typesense(alice_api, "aardvark") == ["Aardvark Chronicles"]
