"""Reindex: a new collection behind the alias, searches answering throughout, no write lost."""

import random
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection

from offload import jobs
from offload.lib.locks import RedisLock
from offload.models import Job, JobStatus, Library, MediaItem
from search import drift, reindex, sync
from search import typesense as ts
from search.models import BuildStatus, IndexBuild, PendingSync
from tests.support.jobrunner import drain
from tests.support.people import api_client_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def library(alice, tmp_path):
    return Library.objects.create(name="Films", path=str(tmp_path / "films"), owner=alice)


def seed(library: Library, count: int) -> list[int]:
    """Items made in bulk (no signals), marked explicitly and indexed."""
    items = MediaItem.objects.bulk_create(
        [
            MediaItem(library=library, relative_path=f"{n:05}.mkv", title=f"Film {n}", tags=["catalogue"])
            for n in range(count)
        ]
    )
    ids = [item.pk for item in items]
    sync.mark_items(ids)
    sync.sync_pending()
    assert not PendingSync.objects.exists()
    return ids


def indexed_titles() -> dict[int, str]:
    client = ts.write_client()
    return {int(d["id"]): d["title"] for d in ts.export_documents(client, ts.alias_name(), ("id", "title"))}


def database_titles() -> dict[int, str]:
    return dict(MediaItem.objects.values_list("pk", "title"))


def test_reindex_swaps_the_alias_and_drops_the_old_collection(index, library):
    seed(library, 30)
    client = ts.write_client()
    first = ts.alias_target(client)
    result = reindex.rebuild(batch_size=7)
    assert result["documents"] == 30 and result["previous"] == first
    assert ts.alias_target(client) == result["collection"] != first
    assert first not in ts.collection_names(client)
    assert IndexBuild.objects.get(collection=result["collection"]).status == BuildStatus.LIVE
    second = reindex.rebuild()
    assert IndexBuild.objects.get(collection=result["collection"]).status == BuildStatus.REPLACED
    assert ts.alias_target(client) == second["collection"]
    assert indexed_titles() == database_titles()


def test_a_reindex_under_concurrent_writes_loses_nothing_while_searches_answer(index, library, staff):
    ids = seed(library, 600)
    searcher = api_client_for(staff)
    stop = threading.Event()
    problems: list[object] = []
    answers: list[int] = []
    writes = {"during_build": 0}
    building = threading.Event()

    def search_loop() -> None:
        try:
            while not stop.is_set():
                response = searcher.get("/api/v1/search/", {"q": "catalogue", "per_page": 1})
                body = response.json()
                if response.status_code != 200 or body["degraded"] or body["found"] == 0:
                    problems.append((response.status_code, body))
                answers.append(body.get("found", 0))
        finally:
            connection.close()

    def search_lane() -> None:
        # What the search lane's cluster does: drain the outbox as writes commit.
        try:
            while not stop.is_set():
                sync.sync_pending()
                time.sleep(0.01)
        finally:
            connection.close()

    def writer() -> None:
        rng = random.Random(5)
        alive = list(ids[10:-10])
        n = 0
        try:
            while not stop.is_set():
                n += 1
                choice = rng.random()
                if choice < 0.6:
                    item = MediaItem.objects.get(pk=rng.choice(alive))
                    item.title = f"Edited {n}"
                    item.save(update_fields=["title", "updated_at"])
                elif choice < 0.8 and len(alive) > 400:
                    MediaItem.objects.filter(pk=alive.pop(rng.randrange(len(alive)))).delete()
                else:
                    new = MediaItem.objects.create(
                        library=library, relative_path=f"new-{n}.mkv", title=f"New {n}", tags=["catalogue"]
                    )
                    alive.append(new.pk)
                if building.is_set():
                    writes["during_build"] += 1
                time.sleep(0.005)
        finally:
            connection.close()

    def progress(percent: float) -> None:
        if not building.is_set():
            building.set()
            # Deterministic writes on both sides of the build's cursor: items already
            # copied into the new collection, and items it has not reached yet.
            for pk, title in ((ids[0], "Early edit"), (ids[-1], "Late edit")):
                item = MediaItem.objects.get(pk=pk)
                item.title = title
                item.save(update_fields=["title", "updated_at"])
            MediaItem.objects.filter(pk__in=[ids[1], ids[-2]]).delete()
            MediaItem.objects.create(library=library, relative_path="mid-build.mkv", title="Mid build")
        # Widen the build so the concurrent writer lands inside it.
        time.sleep(0.05)

    threads = [threading.Thread(target=f) for f in (search_loop, search_lane, writer)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        result = reindex.rebuild(batch_size=50, progress=progress)
        building.clear()
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    # The lane has stopped: finish what the last writes queued, as it would have.
    while PendingSync.objects.exists():
        sync.sync_pending()

    assert problems == []
    assert len(answers) > 10
    assert writes["during_build"] > 10
    assert result["replayed"] > 0
    assert ts.alias_target(ts.write_client()) == result["collection"]
    expected = database_titles()
    assert expected[ids[0]] == "Early edit" and expected[ids[-1]] == "Late edit"
    assert ids[1] not in expected and ids[-2] not in expected
    assert indexed_titles() == expected
    assert drift.find_drift().total == 0


def test_a_write_racing_the_bulk_copy_is_replayed(index, library, monkeypatch):
    seed(library, 40)
    real_batches = reindex.iter_document_batches
    raced = []

    def batches_with_a_race(size):
        for batch in real_batches(size):
            if not raced:
                # The batch was read; before it is imported the item changes and the sync
                # writes the change to the build. The import then copies the older state.
                raced.append(int(batch[0]["id"]))
                MediaItem.objects.filter(pk=raced[0]).update(title="Raced edit")
                sync.mark_items(raced)
                sync.sync_pending()
            yield batch

    monkeypatch.setattr(reindex, "iter_document_batches", batches_with_a_race)
    result = reindex.rebuild(batch_size=10)
    assert result["replayed"] == 1
    assert indexed_titles()[raced[0]] == "Raced edit"
    assert indexed_titles() == database_titles()


def test_a_second_reindex_is_refused_while_one_builds(index, library):
    seed(library, 5)
    IndexBuild.objects.create(collection=f"{index}_vbusy")
    before = set(ts.collection_names(ts.write_client()))
    with pytest.raises(reindex.ReindexBusy):
        reindex.rebuild()
    assert set(ts.collection_names(ts.write_client())) == before


def test_a_reindex_holding_the_lock_keeps_a_second_one_from_starting(index, library):
    seed(library, 5)
    holder = RedisLock("reindex", ttl_seconds=30)
    assert holder.acquire()
    before = set(ts.collection_names(ts.write_client()))
    try:
        with pytest.raises(reindex.ReindexBusy, match="lock"):
            reindex.rebuild()
        assert set(ts.collection_names(ts.write_client())) == before
    finally:
        holder.release()
    assert reindex.rebuild()["documents"] == 5
    # Released when the build ends: the next one may start.
    after = RedisLock("reindex")
    assert after.acquire()
    after.release()


def test_a_build_whose_process_died_is_taken_over(index, library, settings):
    seed(library, 5)
    client = ts.write_client()
    ts.create_collection(client, f"{index}_vdead")
    IndexBuild.objects.create(collection=f"{index}_vdead")
    IndexBuild.objects.update(heartbeat_at=IndexBuild.objects.get().started_at.replace(year=2000))
    result = reindex.rebuild()
    assert IndexBuild.objects.get(collection=f"{index}_vdead").status == BuildStatus.FAILED
    assert f"{index}_vdead" not in ts.collection_names(client)
    assert ts.alias_target(client) == result["collection"]


def test_the_reindex_command_rebuilds(index, library, capsys):
    seed(library, 12)
    call_command("reindex", "--batch-size", "5")
    out = capsys.readouterr().out
    assert "is live: 12 documents" in out
    assert indexed_titles() == database_titles()


def test_the_reindex_job_runs_through_the_job_spine(index, library, staff):
    seed(library, 8)
    job, created = jobs.enqueue("search.reindex", user=staff)
    assert created
    drain()
    job = Job.objects.get(pk=job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["documents"] == 8
    assert ts.alias_target(ts.write_client()) == job.result["collection"]
