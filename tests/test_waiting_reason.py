"""Why a queued job waits (paused, capped, backoff), from one function: the API's waiting_reason and the pages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from offload import jobs
from offload.jobs import control
from offload.models import Job, JobStatus, Library, MediaItem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alices_items(alice, library_root):
    library = Library.objects.create(name="Alice's", path=str(library_root / "alice"), owner=alice)
    return [MediaItem.objects.create(library=library, relative_path=f"clip{n}.mp4") for n in range(3)]


def test_a_job_of_a_paused_kind_says_paused_in_its_answer_and_its_page(alice_api, alices_items, admin_client):
    control.pause("media.probe")
    body = alice_api.post(f"/api/v1/media/{alices_items[0].pk}/probe/").json()
    assert body["status"] == "queued"
    assert body["waiting_reason"] == "paused: an operator paused media.probe"
    assert alice_api.get(body["url"]).json()["waiting_reason"] == body["waiting_reason"]
    page = admin_client.get(f"/admin/offload/job/{body['id']}/change/").content.decode()
    assert "paused: an operator paused media.probe" in page
    listing = admin_client.get("/admin/offload/job/").content.decode()
    assert "paused: an operator paused media.probe" in listing


def test_a_job_held_by_a_full_cap_says_how_many_run(alice, alices_items, alice_api):
    control.set_concurrency("media.probe", 1)
    running, _ = jobs.enqueue("media.probe", target=alices_items[0], user=alice)
    jobs.claim(running.pk)
    waiting, _ = jobs.enqueue("media.probe", target=alices_items[1], user=alice)
    answer = alice_api.get(f"/api/v1/jobs/{waiting.pk}/").json()
    assert answer["waiting_reason"] == "capped: 1 of at most 1 media.probe running"
    assert alice_api.get(f"/api/v1/jobs/{running.pk}/").json()["waiting_reason"] is None


def test_a_job_in_its_backoff_says_until_when_and_why(alice, alice_api, alices_items):
    job, _ = jobs.enqueue("media.probe", target=alices_items[0], user=alice)
    claimed = jobs.claim(job.pk)
    assert jobs.fail_or_retry(claimed, "upstream answered 503", retry_after=600)
    reason = alice_api.get(f"/api/v1/jobs/{job.pk}/").json()["waiting_reason"]
    assert reason.startswith("backoff until ")
    assert reason.endswith(" UTC (upstream answered 503)")


def test_a_job_waiting_its_turn_has_no_reason(alice, alice_api, alices_items):
    job, _ = jobs.enqueue("media.probe", target=alices_items[0], user=alice)
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    assert alice_api.get(f"/api/v1/jobs/{job.pk}/").json()["waiting_reason"] is None


def test_the_job_list_reads_the_holds_once_whatever_its_length(alice, alice_api, alices_items):
    control.pause("media.probe")

    def listed() -> tuple[list, int]:
        alice_api.get("/api/v1/jobs/?kind=none")  # the token and caches warmed
        with CaptureQueriesContext(connection) as queries:
            results = alice_api.get("/api/v1/jobs/").json()["results"]
        return results, len(queries)

    jobs.enqueue("media.probe", target=alices_items[0], user=alice)
    one, few = listed()
    assert len(one) == 1
    for item in alices_items[1:]:
        jobs.enqueue("media.probe", target=item, user=alice)
    three, more = listed()
    assert [job["waiting_reason"] for job in three] == ["paused: an operator paused media.probe"] * 3
    assert more == few


def test_pausing_and_resuming_a_kind_shows_at_once_in_the_jobs_cached_answer(alice, alice_api, staff_api, alices_items):
    job, _ = jobs.enqueue("media.probe", target=alices_items[0], user=alice)
    url = f"/api/v1/jobs/{job.pk}/"
    assert alice_api.get(url).json()["waiting_reason"] is None
    assert alice_api.get(url)["X-Cache"] == "hit"  # the answer below would be stale without invalidation
    assert staff_api.get(url).json()["waiting_reason"] is None

    assert staff_api.post("/api/v1/queues/media.probe/pause/").status_code == 200
    assert alice_api.get(url).json()["waiting_reason"] == "paused: an operator paused media.probe"
    assert staff_api.get(url).json()["waiting_reason"] == "paused: an operator paused media.probe"
    listed = alice_api.get("/api/v1/jobs/").json()["results"]
    assert [j["waiting_reason"] for j in listed] == ["paused: an operator paused media.probe"]

    assert staff_api.post("/api/v1/queues/media.probe/resume/").status_code == 200
    assert alice_api.get(url).json()["waiting_reason"] is None


def test_a_cap_set_after_a_read_shows_at_once_in_the_jobs_cached_answer(alice, alice_api, alices_items):
    running, _ = jobs.enqueue("media.probe", target=alices_items[0], user=alice)
    jobs.claim(running.pk)
    waiting, _ = jobs.enqueue("media.probe", target=alices_items[1], user=alice)
    url = f"/api/v1/jobs/{waiting.pk}/"
    assert alice_api.get(url).json()["waiting_reason"] is None
    control.set_concurrency("media.probe", 1)
    assert alice_api.get(url).json()["waiting_reason"] == "capped: 1 of at most 1 media.probe running"
    control.set_concurrency("media.probe", None)
    assert alice_api.get(url).json()["waiting_reason"] is None
