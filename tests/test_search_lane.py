"""The search lane end to end: real qclusters, a busy default lane, a killed search worker."""

import uuid

import pytest
from django.utils import timezone

from offload import jobs
from offload.models import Job, JobStatus, Library, MediaItem
from search import typesense as ts
from search.models import PendingSync
from tests.support.cluster import wait_for
from tests.support.services import API_KEY, TypesenseServer

pytestmark = pytest.mark.slow


def lane_env(settings) -> dict[str, str]:
    return {
        "TYPESENSE_URL": settings.TYPESENSE_URL,
        "TYPESENSE_API_KEY": settings.TYPESENSE_API_KEY,
        "OFFLOAD_SEARCH_ALIAS": settings.SEARCH_ALIAS,
        "OFFLOAD_SEARCH_SYNC_RETRY": "0.2",
    }


def indexed_title(item_id: int) -> str | None:
    try:
        return ts.write_client().collections[ts.alias_name()].documents[str(item_id)].retrieve()["title"]
    except ts.ERRORS:
        return None


def test_the_search_lane_indexes_while_every_default_worker_is_busy(index, qcluster, settings, alice, library_root):
    default = qcluster(**lane_env(settings))
    lane = qcluster(Q_CLUSTER_NAME=settings.SEARCH_Q_CLUSTER, **lane_env(settings))
    sleepers = [
        jobs.enqueue("system.sleep", params={"seconds": 120, "n": n}, user=alice)[0]
        for n in range(settings.Q_CLUSTER["workers"])
    ]
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in sleepers], status=JobStatus.RUNNING).count() == len(sleepers),
        what="every default worker to be busy",
        cluster=default,
    )
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="Arrival")
    wait_for(lambda: indexed_title(item.pk) == "Arrival", what="the item to be indexed", cluster=lane)
    item.title = "Sicario"
    item.save(update_fields=["title", "updated_at"])
    wait_for(lambda: indexed_title(item.pk) == "Sicario", what="the edit to be indexed", cluster=lane)
    # The default lane never got to it: its workers are still in their long jobs.
    assert set(Job.objects.filter(pk__in=[j.pk for j in sleepers]).values_list("status", flat=True)) == {
        JobStatus.RUNNING
    }
    assert not PendingSync.objects.exists()


def test_writes_survive_a_killed_search_worker_and_a_typesense_outage(
    qcluster, settings, alice, library_root, tmp_path
):
    server = TypesenseServer(tmp_path / "typesense").start()
    settings.TYPESENSE_URL, settings.TYPESENSE_API_KEY = server.url, API_KEY
    settings.SEARCH_ALIAS = f"t{uuid.uuid4().hex[:12]}"
    try:
        lane = qcluster(Q_CLUSTER_NAME=settings.SEARCH_Q_CLUSTER, **lane_env(settings))
        library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
        heat = MediaItem.objects.create(library=library, relative_path="heat.mkv", title="Heat")
        wait_for(lambda: indexed_title(heat.pk) == "Heat", what="the first write", cluster=lane)

        server.stop()
        heat.title = "Heat (1995)"
        heat.save(update_fields=["title", "updated_at"])
        ronin = MediaItem.objects.create(library=library, relative_path="ronin.mkv", title="Ronin")
        wait_for(
            lambda: PendingSync.objects.filter(attempts__gte=1).count() == 2,
            what="the lane to try and keep both writes",
            cluster=lane,
        )
        lane.kill()

        server.start()
        ts._clients.clear()
        lane = qcluster(Q_CLUSTER_NAME=settings.SEARCH_Q_CLUSTER, **lane_env(settings))
        wait_for(
            lambda: not PendingSync.objects.filter(claimed_until__gt=timezone.now()).exists(),
            what="the retry delays to pass",
        )
        collateral = MediaItem.objects.create(library=library, relative_path="c.mkv", title="Collateral")
        wait_for(lambda: not PendingSync.objects.exists(), what="every kept write to drain", cluster=lane)
        assert indexed_title(heat.pk) == "Heat (1995)"
        assert indexed_title(ronin.pk) == "Ronin"
        assert indexed_title(collateral.pk) == "Collateral"
    finally:
        server.stop()
