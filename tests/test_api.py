"""The REST API per docs/api.md: shapes, status codes, access and bad input."""

import pytest
from django.utils import timezone

from offload import jobs
from offload.api.pagination import JobCursorPagination
from offload.models import Job, JobStatus, Library, MediaItem
from tests.support.jobrunner import drain
from tests.support.media import make_video

JOB_KEYS = {
    "id",
    "kind",
    "status",
    "progress",
    "target",
    "params",
    "attempts",
    "error",
    "result",
    "requested_by",
    "created_at",
    "started_at",
    "finished_at",
    "url",
    "waiting_reason",
}


@pytest.fixture
def alices_library(alice, library_root):
    folder = library_root / "alice"
    make_video(folder / "clip.mp4")
    return Library.objects.create(name="Alice's", path=str(folder), owner=alice)


@pytest.fixture
def alices_item(alices_library):
    return MediaItem.objects.create(library=alices_library, relative_path="clip.mp4")


def test_anonymous_requests_get_401_except_schema(anon_api):
    for path in ("/api/v1/libraries/", "/api/v1/media/", "/api/v1/jobs/"):
        response = anon_api.get(path)
        assert response.status_code == 401
        assert "detail" in response.json()
    schema = anon_api.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"openapi: 3" in schema.content


def test_create_a_library_inside_the_roots(alice_api, alice, library_root, settings):
    settings.OFFLOAD_USERS_CREATE_LIBRARIES = True
    (library_root / "films").mkdir()
    response = alice_api.post("/api/v1/libraries/", {"name": "Films", "path": "films"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["path"] == str(library_root / "films")
    assert body["owner"] == alice.pk
    assert alice_api.get("/api/v1/libraries/").json()["results"][0]["name"] == "Films"


def test_scan_answers_202_with_the_job_and_a_location(alice_api, alices_library, alice):
    response = alice_api.post(f"/api/v1/libraries/{alices_library.pk}/scan/")
    assert response.status_code == 202
    body = response.json()
    assert set(body) == JOB_KEYS
    assert body["kind"] == "library.scan"
    assert body["status"] == "queued"
    assert body["target"] == {"type": "library", "id": alices_library.pk}
    assert body["requested_by"] == alice.pk
    assert response["Location"] == f"/api/v1/jobs/{body['id']}/"
    again = alice_api.post(f"/api/v1/libraries/{alices_library.pk}/scan/")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]


def test_idempotency_key_header_answers_the_same_job(alice_api, alices_item):
    first = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="abc")
    drain()
    second = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="abc")
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["status"] == "succeeded"
    third = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/")
    assert third.status_code == 202 and third.json()["id"] != first.json()["id"]


def test_an_idempotency_key_answered_by_an_identical_active_job_keeps_answering_it(alice_api, alices_item):
    first = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/")
    keyed = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="retry-me")
    assert keyed.status_code == 200 and keyed.json()["id"] == first.json()["id"]
    drain()
    # The client's retry with the same key, after the job finished, still answers that job.
    again = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="retry-me")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "succeeded"


def test_idempotency_key_reused_for_another_request_answers_422(alice_api, alices_item, alices_library):
    alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="k")
    response = alice_api.post(f"/api/v1/libraries/{alices_library.pk}/scan/", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]


def test_probe_through_the_api_fills_technical_metadata(alice_api, alices_item):
    job_id = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/").json()["id"]
    drain()
    job = alice_api.get(f"/api/v1/jobs/{job_id}/").json()
    assert job["status"] == "succeeded"
    assert job["progress"] == 100.0
    assert job["result"]["video_codec"] == "h264"
    detail = alice_api.get(f"/api/v1/media/{alices_item.pk}/").json()
    assert detail["technical"]["width"] == 160
    assert detail["technical"]["video_codec"] == "h264"
    assert detail["metadata"]["title"] == ""
    assert detail["renditions"] == []
    assert detail["status"] == "ready"


def test_media_list_filters(alice_api, alices_library, alices_item):
    MediaItem.objects.create(library=alices_library, relative_path="song.m4a", kind="track", title="A Song")
    by_kind = alice_api.get("/api/v1/media/?kind=track").json()
    assert [m["relative_path"] for m in by_kind["results"]] == ["song.m4a"]
    by_q = alice_api.get("/api/v1/media/?q=song").json()
    assert by_q["count"] == 1
    by_library = alice_api.get(f"/api/v1/media/?library={alices_library.pk}").json()
    assert by_library["count"] == 2


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("kind=bogus", "kind"),
        ("library=nope", "library"),
        ("library=0", "library"),
        ("library=²", "library"),
        ("library=99999999999999999999999", "library"),
        ("q=a%00b", "q"),
    ],
)
def test_a_bad_media_filter_answers_400_with_the_fields_error(alice_api, alices_item, query, field):
    response = alice_api.get(f"/api/v1/media/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert isinstance(body[field][0], str) and body[field][0]


def test_patch_edits_descriptive_fields_and_locks_them(alice_api, alices_item):
    response = alice_api.patch(
        f"/api/v1/media/{alices_item.pk}/", {"title": "My Title", "year": 1999, "genres": ["Drama"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["metadata"]["title"] == "My Title"
    assert body["locked_fields"] == ["genres", "title", "year"]
    alices_item.refresh_from_db()
    assert alices_item.year == 1999


def test_jobs_list_is_newest_first_and_filters(alice_api, alice, alices_item, alices_library):
    first, _ = jobs.enqueue("media.probe", target=alices_item, user=alice)
    second, _ = jobs.enqueue("library.scan", target=alices_library, user=alice)
    listed = alice_api.get("/api/v1/jobs/").json()
    assert [j["id"] for j in listed["results"]] == [second.pk, first.pk]
    assert [j["id"] for j in alice_api.get("/api/v1/jobs/?kind=media.probe").json()["results"]] == [first.pk]
    assert alice_api.get("/api/v1/jobs/?status=failed").json()["results"] == []


@pytest.mark.parametrize(("query", "field"), [("status=bogus", "status"), ("kind=no.such", "kind")])
def test_a_bad_job_filter_answers_400_with_the_fields_error(alice_api, query, field):
    response = alice_api.get(f"/api/v1/jobs/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert "valid choice" in response.json()[field][0]


def test_the_job_list_pages_by_cursor_and_new_jobs_never_shift_a_page(alice_api, alice, library_root):
    libraries = [Library.objects.create(name=f"L{i}", path=str(library_root), owner=alice) for i in range(5)]
    made = [jobs.enqueue("library.scan", target=library, user=alice)[0] for library in libraries[:4]]
    first = alice_api.get("/api/v1/jobs/?page_size=2").json()
    assert set(first) == {"next", "previous", "results"}
    assert [j["id"] for j in first["results"]] == [made[3].pk, made[2].pk]
    # A job arriving at the top does not push an already-seen row onto the next page.
    jobs.enqueue("library.scan", target=libraries[4], user=alice)
    second = alice_api.get(first["next"]).json()
    assert [j["id"] for j in second["results"]] == [made[1].pk, made[0].pk]
    assert second["next"] is None and second["previous"] is not None


def test_the_job_lists_page_size_is_capped(alice_api, alice, library_root):
    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    jobs.enqueue("library.scan", target=library, user=alice)
    assert len(alice_api.get("/api/v1/jobs/?page_size=100000").json()["results"]) == 1
    assert JobCursorPagination.max_page_size == 200


def test_cancel_and_retry_through_the_api(alice_api, alice, alices_item):
    job, _ = jobs.enqueue("media.probe", target=alices_item, user=alice)
    cancelled = alice_api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert alice_api.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 409
    retried = alice_api.post(f"/api/v1/jobs/{job.pk}/retry/")
    assert retried.status_code == 202
    assert retried.json()["status"] == "queued"
    conflict = alice_api.post(f"/api/v1/jobs/{job.pk}/retry/")
    assert conflict.status_code == 409
    assert "detail" in conflict.json()


def test_cancel_a_running_job_asks_its_worker_to_stop(alice_api, alice, alices_item):
    job, _ = jobs.enqueue("media.probe", target=alices_item, user=alice)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, started_at=timezone.now())
    response = alice_api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 202
    job.refresh_from_db()
    assert job.cancel_requested_at is not None
    assert job.cancelled_by == alice


# --- Access: another user's objects answer 404, never 403 --------------------


def test_bob_cannot_see_cancel_or_retry_alices_job(bob_api, alice, alices_item):
    job, _ = jobs.enqueue("media.probe", target=alices_item, user=alice)
    assert bob_api.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert bob_api.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 404
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    assert bob_api.post(f"/api/v1/jobs/{job.pk}/retry/").status_code == 404
    assert bob_api.get("/api/v1/jobs/").json()["results"] == []
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_bob_cannot_see_or_act_on_alices_library_and_media(bob_api, alices_library, alices_item):
    assert bob_api.get("/api/v1/libraries/").json()["count"] == 0
    assert bob_api.get(f"/api/v1/libraries/{alices_library.pk}/").status_code == 404
    assert bob_api.post(f"/api/v1/libraries/{alices_library.pk}/scan/").status_code == 404
    assert bob_api.get("/api/v1/media/").json()["count"] == 0
    assert bob_api.get(f"/api/v1/media/{alices_item.pk}/").status_code == 404
    assert bob_api.post(f"/api/v1/media/{alices_item.pk}/probe/").status_code == 404
    assert bob_api.patch(f"/api/v1/media/{alices_item.pk}/", {"title": "x"}, format="json").status_code == 404
    assert Job.objects.count() == 0


def test_staff_see_and_act_on_everyones_jobs(staff_api, alice, alices_item):
    job, _ = jobs.enqueue("media.probe", target=alices_item, user=alice)
    assert staff_api.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
    assert staff_api.get("/api/v1/media/").json()["count"] == 1
    assert staff_api.post(f"/api/v1/jobs/{job.pk}/cancel/").json()["status"] == "cancelled"


def test_internal_job_kinds_are_listed_to_staff_only(alice_api, staff_api, alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    assert alice_api.get("/api/v1/jobs/").json()["results"] == []
    assert alice_api.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert staff_api.get(f"/api/v1/jobs/{job.pk}/").status_code == 200


# --- Bad input: 4xx JSON, never 500 ------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "../",
        "../../etc",
        "/etc",
        "/",
        "%2e%2e/%2e%2e/etc",
        "..%2f..%2fetc",
        "films/../../..",
        "does-not-exist",
        "with\x00nul",
        "",
        "   ",
        "x" * 5000,
    ],
)
def test_hostile_library_paths_are_refused(alice_api, library_root, path, settings):
    settings.OFFLOAD_USERS_CREATE_LIBRARIES = True
    (library_root / "films").mkdir(exist_ok=True)
    response = alice_api.post("/api/v1/libraries/", {"name": "Evil", "path": path}, format="json")
    assert response.status_code == 400
    assert "path" in response.json()
    assert Library.objects.count() == 0


def test_a_link_out_of_the_roots_is_refused_as_a_library(alice_api, library_root, tmp_path, settings):
    settings.OFFLOAD_USERS_CREATE_LIBRARIES = True
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (library_root / "sneaky").symlink_to(outside)
    response = alice_api.post("/api/v1/libraries/", {"name": "Sneaky", "path": "sneaky"}, format="json")
    assert response.status_code == 400
    assert "inside the library roots" in response.json()["path"][0]


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("post", "/api/v1/libraries/", "{not json", "application/json"),
        ("post", "/api/v1/libraries/", "[]", "application/json"),
        ("post", "/api/v1/libraries/", '{"name": 5, "path": ["a"]}', "application/json"),
        ("post", "/api/v1/libraries/", '{"name": "x"}', "application/json"),
        ("post", "/api/v1/libraries/", "name=x&path=y", "text/plain"),
        ("patch", "/api/v1/media/{item}/", '{"year": "nineteen"}', "application/json"),
        ("patch", "/api/v1/media/{item}/", '{"genres": "Drama"}', "application/json"),
        ("patch", "/api/v1/media/{item}/", '{"season": -1}', "application/json"),
        ("patch", "/api/v1/media/{item}/", "\xff\xfe", "application/json"),
        ("get", "/api/v1/jobs/abc/", None, None),
        ("get", "/api/v1/jobs/99999999999999999999999/", None, None),
        ("post", "/api/v1/jobs/-1/cancel/", None, None),
        ("get", "/api/v1/media/..%2f..%2fetc/", None, None),
        ("post", "/api/v1/media/{item}/transcode-nope/", None, None),
        ("get", "/api/v1/no-such-endpoint/", None, None),
        ("delete", "/api/v1/media/{item}/", None, None),
        ("put", "/api/v1/media/{item}/", '{"title": "x"}', "application/json"),
        ("get", "/api/v1/jobs/?cursor=999", None, None),
        ("get", "/api/v1/jobs/?cursor=-1", None, None),
        ("get", "/api/v1/jobs/?status=bogus", None, None),
    ],
)
def test_bad_requests_answer_4xx_json(alice_api, alices_item, method, path, body, content_type):
    path = path.format(item=alices_item.pk)
    kwargs = {"data": body, "content_type": content_type} if body is not None else {}
    response = getattr(alice_api, method)(path, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:200])
    assert response["Content-Type"].startswith("application/json")
    response.json()


@pytest.mark.parametrize(
    "path",
    ["/api/v1/media/?q=a%00b", "/api/v1/media/?kind=%00", "/api/v1/jobs/?status=%00", "/api/v1/jobs/?kind=x%00"],
)
def test_nul_bytes_in_query_parameters_answer_400(alice_api, alices_item, path):
    response = alice_api.get(path)
    assert response.status_code == 400
    # The filter's own field error names the parameter.
    assert list(response.json()) == [path.split("?")[1].split("=")[0]]


def test_a_librarys_item_count_follows_its_items_and_the_list_reads_no_items(
    alice_api, alices_library, alices_item, django_capture_on_commit_callbacks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def listed_count() -> int:
        with CaptureQueriesContext(connection) as queries:
            [library] = alice_api.get("/api/v1/libraries/").json()["results"]
        # The count is stored: a library of a million items lists as fast as an empty one.
        assert not [q["sql"] for q in queries if "offload_mediaitem" in q["sql"]]
        return library["item_count"]

    assert listed_count() == 1
    # Committed, as a scan's writes are: the cached answers are bumped then.
    with django_capture_on_commit_callbacks(execute=True):
        MediaItem.objects.create(library=alices_library, relative_path="two.mp4")
    assert listed_count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        alices_item.delete()
    assert listed_count() == 1
    assert alice_api.get(f"/api/v1/libraries/{alices_library.pk}/").json()["item_count"] == 1


def test_a_scan_recounts_items_written_behind_the_signals_back(alice, alice_api, alices_library):
    MediaItem.objects.bulk_create(MediaItem(library=alices_library, relative_path=f"gone-{n}.mp4") for n in range(3))
    alices_library.refresh_from_db()
    assert alices_library.item_count == 0  # bulk_create sends no signals
    jobs.enqueue("library.scan", target=alices_library, user=alice)
    drain()
    # The three rows name no file and are removed; the one real clip stays.
    assert alice_api.get(f"/api/v1/libraries/{alices_library.pk}/").json()["item_count"] == 1
    assert alices_library.items.count() == 1
