"""Typesense killed mid-way: searches answer degraded from the database, writes wait, then converge."""

import uuid

import pytest

from offload.models import Library, MediaItem
from search import drift, tasks
from search import typesense as ts
from search.models import PendingSync
from tests.support.search import drain_search_lane
from tests.support.services import API_KEY, TypesenseServer
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def own_typesense(tmp_path, settings):
    """A Typesense server of this test's own, free to be stopped and started again."""
    server = TypesenseServer(tmp_path / "typesense").start()
    settings.TYPESENSE_URL = server.url
    settings.TYPESENSE_API_KEY = API_KEY
    settings.SEARCH_ALIAS = f"t{uuid.uuid4().hex[:12]}"
    # Quick retries, so the test waits seconds rather than the production backoff.
    settings.SEARCH_SYNC_RETRY_SECONDS = 0.1
    settings.SEARCH_SYNC_RETRY_MAX_SECONDS = 0.5
    settings.SEARCH_READ_PAUSE_SECONDS = 0.2
    yield server
    server.stop()


def test_a_typesense_that_never_answers_costs_a_search_its_short_timeout_not_a_hang(
    alice, alice_api, silent_server, settings, tmp_path
):
    settings.TYPESENSE_URL = f"http://127.0.0.1:{silent_server}"
    library = Library.objects.create(name="L", path=str(tmp_path), owner=alice)
    MediaItem.objects.create(library=library, relative_path="heat.mkv", title="Heat")
    # The read client gives up after its timeout and one retry; the database answers.
    answer = search(alice_api, q="heat")
    assert answer["degraded"] is True
    assert titles(answer) == ["Heat"]


def search(client, **params) -> dict:
    response = client.get("/api/v1/search/", params)
    assert response.status_code == 200, response.content
    return response.json()


def titles(answer: dict) -> list[str]:
    return sorted(hit["title"] for hit in answer["hits"])


def test_typesense_killed_midway_answers_degraded_then_converges(
    own_typesense, alice, alice_api, anon_api, tmp_path, django_capture_on_commit_callbacks
):
    library = Library.objects.create(name="Films", path=str(tmp_path / "films"), owner=alice)
    with django_capture_on_commit_callbacks(execute=True):
        heat = MediaItem.objects.create(library=library, relative_path="heat.mkv", title="Heat", year=1995)
        ronin = MediaItem.objects.create(library=library, relative_path="ronin.mkv", title="Ronin", year=1998)
    drain_search_lane()
    assert search(alice_api, q="heat")["degraded"] is False

    own_typesense.stop()

    answer = search(alice_api, q="heat")
    assert answer["degraded"] is True and titles(answer) == ["Heat"]
    ready = anon_api.get("/healthz/ready").json()
    assert ready["status"] == "degraded" and ready["checks"]["search"].startswith("degraded")

    # Writes made while it is down: an edit, a delete, a new item.
    ronin_id = ronin.pk
    with django_capture_on_commit_callbacks(execute=True):
        alice_api.patch(f"/api/v1/media/{heat.pk}/", {"title": "Heat (1995)"}, format="json")
        ronin.delete()
        collateral = MediaItem.objects.create(library=library, relative_path="c.mkv", title="Collateral")
    drain_search_lane()
    assert set(PendingSync.objects.values_list("item_id", flat=True)) == {heat.pk, ronin_id, collateral.pk}
    assert all(row.attempts >= 1 and row.last_error for row in PendingSync.objects.all())
    # The degraded answer already reflects them: it reads the database.
    assert titles(search(alice_api)) == ["Collateral", "Heat (1995)"]

    # A worker restart keeps nothing in memory that matters: the writes wait in the database.
    ts._clients.clear()
    own_typesense.start()

    def drained() -> bool:
        if not PendingSync.objects.exists():
            return True
        tasks.drain_pending()  # what the scheduled drain runs
        return False

    wait_for(drained, timeout=60, what="pending writes to drain after Typesense came back")

    def answered_by_typesense() -> dict | None:
        answer = search(alice_api)
        return None if answer["degraded"] else answer

    answer = wait_for(answered_by_typesense, timeout=10, what="search to answer from Typesense again")
    assert titles(answer) == ["Collateral", "Heat (1995)"]
    assert titles(search(alice_api, q="colateral")) == ["Collateral"]  # a typo: Typesense answers again
    assert drift.find_drift().total == 0
    assert anon_api.get("/healthz/ready").json()["checks"]["search"] == "ok"
