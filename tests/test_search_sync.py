"""Index sync: every change reaches Typesense after commit, once per transaction, and failures wait."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.db import transaction
from prometheus_client import REGISTRY

from offload.models import Library, MediaItem, Rendition
from search import sync
from search import typesense as ts
from search.models import PendingSync
from tests.support.search import drain_search_lane

pytestmark = pytest.mark.django_db


@pytest.fixture
def library(alice, tmp_path):
    return Library.objects.create(name="Films", path=str(tmp_path / "films"), owner=alice)


class CountingProxy:
    """Forwards every request to Typesense and keeps a list of them: what Typesense really received."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: list[tuple[str, str, bytes]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.append((self.command, self.path, body))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, upstream + self.path, data=body, headers=headers, timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def imports(self) -> list[list[dict]]:
        """The documents of each import request received, one list per request."""
        return [
            [json.loads(line) for line in body.decode().splitlines()]
            for method, path, body in self.seen
            if method == "POST" and path.split("?")[0].endswith("/documents/import")
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(index, typesense, settings):
    counting = CountingProxy(typesense.url)
    # Create the collection first, so the counts below are of sync writes only.
    ts.ensure_collection(ts.write_client())
    settings.TYPESENSE_URL = counting.url
    yield counting
    counting.close()


def document(item_id: int) -> dict | None:
    try:
        return ts.write_client().collections[ts.alias_name()].documents[str(item_id)].retrieve()
    except ts.NotFound:
        return None


def test_a_saved_item_becomes_searchable(index, library, alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="Arrival", year=2016)
    drain_search_lane()
    answer = alice_api.get("/api/v1/search/", {"q": "arrival"}).json()
    assert [hit["id"] for hit in answer["hits"]] == [item.pk]
    assert not PendingSync.objects.exists()


def test_a_patch_is_reflected_in_search(index, library, alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="Arrival")
    drain_search_lane()
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.patch(f"/api/v1/media/{item.pk}/", {"title": "Sicario", "year": 2015}, format="json")
    assert response.status_code == 200
    drain_search_lane()
    assert alice_api.get("/api/v1/search/", {"q": "arrival"}).json()["found"] == 0
    hit = alice_api.get("/api/v1/search/", {"q": "sicario"}).json()["hits"][0]
    assert (hit["id"], hit["year"]) == (item.pk, 2015)


def test_a_deleted_item_loses_its_document(index, library, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="Arrival")
    drain_search_lane()
    assert document(item.pk)["title"] == "Arrival"
    with django_capture_on_commit_callbacks(execute=True):
        item.delete()
    drain_search_lane()
    assert document(item.pk) is None
    assert not PendingSync.objects.exists()


def test_deleting_a_library_deletes_its_items_documents(index, library, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ids = [MediaItem.objects.create(library=library, relative_path=f"{n}.mkv").pk for n in range(3)]
    drain_search_lane()
    assert all(document(i) for i in ids)
    with django_capture_on_commit_callbacks(execute=True):
        library.delete()
    drain_search_lane()
    assert not any(document(i) for i in ids)


def test_a_rendition_marks_its_item_as_having_renditions(index, library, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        item = MediaItem.objects.create(library=library, relative_path="a.mkv")
    drain_search_lane()
    assert document(item.pk)["has_renditions"] is False
    with django_capture_on_commit_callbacks(execute=True):
        rendition = Rendition.objects.create(item=item, profile="h264-720p", path="r/a.mp4")
    drain_search_lane()
    assert document(item.pk)["has_renditions"] is True
    with django_capture_on_commit_callbacks(execute=True):
        rendition.delete()
    drain_search_lane()
    assert document(item.pk)["has_renditions"] is False


def test_a_hundred_saves_in_one_transaction_give_one_import_of_one_document(
    proxy, library, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="draft")
        for n in range(100):
            item.title = f"Take {n}"
            item.save(update_fields=["title", "updated_at"])
    assert OrmQ.objects.filter(key="search").count() == 1
    drain_search_lane()
    imports = proxy.imports()
    assert len(imports) == 1
    assert [doc["title"] for doc in imports[0]] == ["Take 99"]


def test_no_typesense_request_runs_inside_the_request(proxy, library, alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="Arrival")
    drain_search_lane()
    proxy.seen.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.patch(f"/api/v1/media/{item.pk}/", {"title": "Sicario"}, format="json").status_code == 200
    assert proxy.seen == []
    drain_search_lane()
    assert [doc["title"] for batch in proxy.imports() for doc in batch] == ["Sicario"]


def test_a_rolled_back_change_leaves_nothing_to_sync(index, library, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        item = MediaItem.objects.create(library=library, relative_path="a.mkv")
    drain_search_lane()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        try:
            with transaction.atomic():
                item.title = "never"
                item.save(update_fields=["title", "updated_at"])
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert not PendingSync.objects.exists()
    assert document(item.pk)["title"] == "a"


def test_a_save_after_a_rolled_back_savepoint_still_syncs(index, library, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="first")
        try:
            with transaction.atomic():
                MediaItem.objects.create(library=library, relative_path="b.mkv", title="gone")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        item.title = "kept"
        item.save(update_fields=["title", "updated_at"])
    drain_search_lane()
    assert document(item.pk)["title"] == "kept"


def test_bulk_paths_mark_what_they_touch(index, library, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ids = [MediaItem.objects.create(library=library, relative_path=f"{n}.mkv").pk for n in range(3)]
    drain_search_lane()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        MediaItem.objects.filter(pk__in=ids).update(kind="episode")
        sync.mark_items(ids)
    drain_search_lane()
    assert {document(i)["kind"] for i in ids} == {"episode"}


def test_a_refused_document_waits_with_its_reason_then_goes_through(
    index, library, settings, django_capture_on_commit_callbacks
):
    client = ts.write_client()
    # A collection whose schema disagrees with the documents: year as a string.
    bad = ts.media_schema(f"{index}_v1")
    bad["fields"] = [{**f, "type": "string"} if f["name"] == "year" else f for f in bad["fields"]]
    client.collections.create(bad)
    client.aliases.upsert(index, {"collection_name": f"{index}_v1"})
    with django_capture_on_commit_callbacks(execute=True):
        good = MediaItem.objects.create(library=library, relative_path="a.mkv", title="No year")
        refused = MediaItem.objects.create(library=library, relative_path="b.mkv", title="Dated", year=2001)
    drain_search_lane()
    assert document(good.pk)["title"] == "No year"
    pending = PendingSync.objects.get()
    assert pending.item_id == refused.pk
    assert pending.attempts == 1 and "year" in pending.last_error
    # Fixed schema: the next drain writes it.
    ts.drop_collection(client, f"{index}_v1")
    client.aliases[index].delete()
    PendingSync.objects.update(claimed_until=None)  # the retry delay has passed
    report = sync.sync_pending()
    assert report.upserted == 1
    assert document(refused.pk)["year"] == 2001
    assert not PendingSync.objects.exists()


def test_a_change_made_while_its_document_is_written_is_written_again(index, library, monkeypatch):
    item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="before")
    real_load = sync.load_documents
    calls = []

    def load_then_change(ids):
        documents = real_load(ids)
        if not calls:
            # The item changes after the sync read it: what it writes is already old.
            MediaItem.objects.filter(pk=item.pk).update(title="after")
            sync.mark_items([item.pk])
        calls.append(ids)
        return documents

    monkeypatch.setattr(sync, "load_documents", load_then_change)
    report = sync.sync_pending()
    assert report.changed_meanwhile == 1
    assert len(calls) == 2
    assert document(item.pk)["title"] == "after"
    assert not PendingSync.objects.exists()


def test_the_sync_lag_is_recorded(index, library):
    before = REGISTRY.get_sample_value("offload_search_sync_lag_seconds_count") or 0
    MediaItem.objects.create(library=library, relative_path="a.mkv")
    MediaItem.objects.create(library=library, relative_path="b.mkv")
    sync.sync_pending()
    assert REGISTRY.get_sample_value("offload_search_sync_lag_seconds_count") == before + 2
