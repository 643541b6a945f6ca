"""API response caching: hits, ETags, exact invalidation on commit, stampedes, Redis away."""

import threading
import time

import pytest
from django.db import connection
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from offload import jobs
from offload.api.caching import cached_get
from offload.models import Library, MediaItem

# on_commit must really run: the versions are bumped after commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def item(alice, library_root):
    library = Library.objects.create(name="A", path=str(library_root), owner=alice)
    return MediaItem.objects.create(library=library, relative_path="a.mp4", title="Before")


def test_a_second_get_is_a_hit_with_the_same_etag_and_if_none_match_answers_304(alice_api, item):
    first = alice_api.get(f"/api/v1/media/{item.pk}/")
    second = alice_api.get(f"/api/v1/media/{item.pk}/")
    assert (first["X-Cache"], second["X-Cache"]) == ("miss", "hit")
    assert first["ETag"] == second["ETag"]
    assert second.json() == first.json()
    again = alice_api.get(f"/api/v1/media/{item.pk}/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""


def test_a_weak_etag_from_a_compressing_proxy_still_answers_304(alice_api, item):
    first = alice_api.get(f"/api/v1/media/{item.pk}/")
    weak = "W/" + first["ETag"]
    assert alice_api.get(f"/api/v1/media/{item.pk}/", HTTP_IF_NONE_MATCH=weak).status_code == 304
    listed = alice_api.get("/api/v1/media/")
    again = alice_api.get("/api/v1/media/", HTTP_IF_NONE_MATCH=f'"other", W/{listed["ETag"]}')
    assert again.status_code == 304
    assert again["ETag"] == listed["ETag"]
    assert alice_api.get("/api/v1/media/", HTTP_IF_NONE_MATCH='W/"other"').status_code == 200


def test_the_cache_key_holds_scheme_and_host_so_links_never_carry_another_hosts_url(alice_api, alice, item):
    for i in range(3):
        jobs.enqueue(
            "media.probe", target=MediaItem.objects.create(library=item.library, relative_path=f"{i}.mp4"), user=alice
        )
    first = alice_api.get("/api/v1/jobs/?page_size=1", HTTP_HOST="localhost")
    assert first.json()["next"].startswith("http://localhost/")
    other = alice_api.get("/api/v1/jobs/?page_size=1", HTTP_HOST="127.0.0.1")
    assert other["X-Cache"] == "miss"
    assert other.json()["next"].startswith("http://127.0.0.1/")
    secure = alice_api.get("/api/v1/jobs/?page_size=1", HTTP_HOST="localhost", secure=True)
    assert secure["X-Cache"] == "miss"
    assert secure.json()["next"].startswith("https://localhost/")
    assert alice_api.get("/api/v1/jobs/?page_size=1", HTTP_HOST="localhost")["X-Cache"] == "hit"


def test_a_patch_is_visible_on_the_next_get(alice_api, item):
    assert alice_api.get(f"/api/v1/media/{item.pk}/").json()["metadata"]["title"] == "Before"
    alice_api.patch(f"/api/v1/media/{item.pk}/", {"title": "After"}, format="json")
    after = alice_api.get(f"/api/v1/media/{item.pk}/")
    assert after["X-Cache"] == "miss"
    assert after.json()["metadata"]["title"] == "After"
    assert alice_api.get("/api/v1/media/?q=After").json()["count"] == 1


def test_an_evicted_version_never_brings_back_an_answer_cached_before_a_write(alice_api, item):
    from offload.lib.redis_state import key, state_redis

    assert alice_api.get(f"/api/v1/media/{item.pk}/").json()["metadata"]["title"] == "Before"
    alice_api.patch(f"/api/v1/media/{item.pk}/", {"title": "After"}, format="json")
    assert alice_api.get(f"/api/v1/media/{item.pk}/").json()["metadata"]["title"] == "After"
    # The version keys are lost (they live on the state instance: a restore from an older
    # snapshot, or an operator's FLUSHDB), while the answers cached under them remain.
    versions = list(state_redis().scan_iter(match=key("apiv", "*")))
    assert versions and state_redis().delete(*versions) > 0
    assert alice_api.get(f"/api/v1/media/{item.pk}/").json()["metadata"]["title"] == "After"


def test_a_job_change_invalidates_its_owners_and_staffs_lists_only(alice_api, bob_api, staff_api, alice, bob, item):
    for client in (alice_api, bob_api, staff_api):
        client.get("/api/v1/jobs/")
    bob_job, _ = jobs.enqueue("media.probe", target=item, user=bob)
    assert alice_api.get("/api/v1/jobs/")["X-Cache"] == "hit"
    mine = bob_api.get("/api/v1/jobs/")
    assert mine["X-Cache"] == "miss" and [j["id"] for j in mine.json()["results"]] == [bob_job.pk]
    assert staff_api.get("/api/v1/jobs/")["X-Cache"] == "miss"
    jobs.cancel(bob_job, bob)
    assert bob_api.get(f"/api/v1/jobs/{bob_job.pk}/").json()["status"] == "cancelled"


def test_answers_are_per_user(alice_api, bob_api, item):
    assert alice_api.get("/api/v1/media/").json()["count"] == 1
    assert bob_api.get("/api/v1/media/").json()["count"] == 0


def test_an_expensive_key_is_recomputed_once_under_a_stampede(alice):
    calls = []
    factory = APIRequestFactory()

    def compute():
        calls.append(1)
        time.sleep(0.3)
        return Response({"answer": 42})

    answers = []

    def ask():
        drf_request = Request(factory.get("/api/v1/expensive/"))
        drf_request.user = alice
        answers.append(cached_get(drf_request, ["media"], compute, expensive=True).data)
        connection.close()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert answers == [{"answer": 42}] * 8


def test_with_redis_away_the_api_still_answers(alice_api, item, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2, "IGNORE_EXCEPTIONS": True},
        }
    }
    for _ in range(2):
        response = alice_api.get(f"/api/v1/media/{item.pk}/")
        assert response.status_code == 200
        assert response["X-Cache"] == "miss"
    assert alice_api.patch(f"/api/v1/media/{item.pk}/", {"title": "Offline"}, format="json").status_code == 200


def test_a_list_read_while_a_job_request_is_under_way_is_not_kept(alice, alice_api, item):
    """The gate moves the job answers on before the write; a read in between is answered but never kept."""
    from offload.lib import gate

    assert alice_api.get("/api/v1/jobs/")["X-Cache"] == "miss"
    assert alice_api.get("/api/v1/jobs/")["X-Cache"] == "hit"
    # As the gate leaves it for alice's job request, before that request's write commits.
    from offload.lib.redis_state import state_redis

    state_redis().incr(gate.busy_key("jobs", str(alice.pk)))
    state_redis().incr(gate.version_key("jobs", str(alice.pk)))
    assert alice_api.get("/api/v1/jobs/")["X-Cache"] == "miss"
    job, _ = jobs.enqueue("media.probe", target=item, user=alice)
    # The write has committed: the gate's thread lifts the mark.
    state_redis().delete(gate.busy_key("jobs", str(alice.pk)))
    listed = alice_api.get("/api/v1/jobs/")
    assert listed["X-Cache"] == "miss"
    assert [j["id"] for j in listed.json()["results"]] == [job.pk]


def test_a_job_request_lists_its_job_at_once_and_then_from_the_cache(alice_api, item):
    assert alice_api.get("/api/v1/jobs/")["X-Cache"] == "miss"
    created = alice_api.post(f"/api/v1/media/{item.pk}/probe/").json()
    listed = alice_api.get("/api/v1/jobs/")
    assert [j["id"] for j in listed.json()["results"]] == [created["id"]]
    # Once the request has answered, its busy mark is lifted and answers are kept again.
    from tests.support.cluster import wait_for

    wait_for(lambda: alice_api.get("/api/v1/jobs/")["X-Cache"] == "hit", timeout=5, what="an answer kept again")
