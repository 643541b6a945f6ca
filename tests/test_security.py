"""Hostile input gets nowhere: escaping, CSRF, and tokens kept out of logs and URLs."""

import logging

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from offload import jobs
from offload.models import Job, Library, MediaItem

SCRIPT = '<script>alert("x")</script>'


@pytest.fixture
def hostile_item(alice, library_root):
    library = Library.objects.create(name=f"Lib {SCRIPT}", path=str(library_root), owner=alice)
    return MediaItem.objects.create(library=library, relative_path=f"{SCRIPT}.mp4", title=SCRIPT, overview=SCRIPT)


def test_script_in_titles_is_escaped_in_the_admin(client, staff, hostile_item, alice):
    client.force_login(staff)
    job, _ = jobs.enqueue("media.probe", target=hostile_item, user=alice)
    pages = [
        reverse("admin:offload_mediaitem_changelist"),
        reverse("admin:offload_mediaitem_change", args=[hostile_item.pk]),
        reverse("admin:offload_library_changelist"),
        reverse("admin:offload_job_change", args=[job.pk]),
        reverse("admin:index"),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        assert SCRIPT not in html, url
    assert "&lt;script&gt;" in client.get(pages[0]).content.decode()


def test_the_api_returns_titles_as_data_not_markup(alice_api, hostile_item):
    body = alice_api.get(f"/api/v1/media/{hostile_item.pk}/")
    assert body["Content-Type"] == "application/json"
    assert body.json()["metadata"]["title"] == SCRIPT


def test_admin_actions_need_a_csrf_token(staff, hostile_item):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(
        reverse("admin:offload_mediaitem_changelist"), {"action": "probe", "_selected_action": [hostile_item.pk]}
    )
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_session_api_writes_need_a_csrf_token(alice, hostile_item):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/api/v1/media/{hostile_item.pk}/probe/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Job.objects.exists()


def test_tokens_are_accepted_only_in_the_header(alice, hostile_item, anon_api):
    key = Token.objects.create(user=alice).key
    for url in (f"/api/v1/jobs/?token={key}", f"/api/v1/jobs/?auth_token={key}", f"/api/v1/jobs/?key={key}"):
        assert anon_api.get(url).status_code == 401


def test_tokens_never_appear_in_logs(alice, hostile_item, anon_api, caplog):
    key = Token.objects.create(user=alice).key
    caplog.set_level(logging.DEBUG)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    anon_api.get("/api/v1/jobs/")
    anon_api.post(f"/api/v1/media/{hostile_item.pk}/probe/")
    anon_api.get("/api/v1/jobs/999999/")
    anon_api.credentials(HTTP_AUTHORIZATION="Token wrong-" + key[:10])
    anon_api.get("/api/v1/jobs/")
    assert caplog.records
    assert key not in caplog.text
    assert key[:10] not in caplog.text


@pytest.fixture
def published(hostile_item, settings):
    """A poster and a rendition as the workers publish them, and a partial output beside them."""
    root = settings.MEDIA_ROOT
    for relative in (
        f"thumbnails/{hostile_item.pk}/poster.jpg",
        f"renditions/{hostile_item.pk}/hls-720p/index.m3u8",
        f".partial/job-1/renditions/{hostile_item.pk}.mp4",
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"published bytes")
    (root.parent / "secret.txt").write_text("outside MEDIA_ROOT")
    return hostile_item


def test_media_files_are_served_to_whoever_may_see_the_item_and_404_to_anyone_else(
    published, alice_api, bob_api, staff_api, anon_api
):
    poster = f"/media/thumbnails/{published.pk}/poster.jpg"
    playlist = f"/media/renditions/{published.pk}/hls-720p/index.m3u8"
    for client in (alice_api, staff_api):
        for url in (poster, playlist):
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert b"".join(answer.streaming_content) == b"published bytes"
    # Another user's item is indistinguishable from a missing one.
    assert bob_api.get(poster).status_code == 404
    assert bob_api.get(f"/media/thumbnails/{published.pk + 1000}/poster.jpg").status_code == 404
    assert anon_api.get(poster).status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        ".partial/job-1/renditions/{pk}.mp4",
        "%2epartial/job-1/renditions/{pk}.mp4",
        "thumbnails/{pk}/../../secret.txt",
        "thumbnails/{pk}/%2e%2e/%2e%2e/secret.txt",
        "thumbnails/{pk}/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "../secret.txt",
        "/etc/passwd",
        "thumbnails/{pk}/.hidden",
        "thumbnails/{pk}",
    ],
)
def test_media_paths_outside_published_outputs_answer_404(published, staff_api, path):
    # Staff see every item: only the path can keep these out.
    assert staff_api.get("/media/" + path.format(pk=published.pk)).status_code == 404


# --- Found by probing from outside (bad input, races) ----------------------------------


@pytest.mark.parametrize("library", ["9223372036854775808", "%C2%B2", "-1", "1e3", "12345678901234567890"])
def test_a_library_filter_that_is_no_id_answers_400_json_not_500(alice_api, hostile_item, library):
    response = alice_api.get(f"/api/v1/media/?library={library}")
    assert response.status_code == 400
    assert "library" in response.json()


def test_a_deeply_nested_json_body_answers_400_json_and_changes_nothing(alice_api, hostile_item):
    body = "[" * 1100 + "]" * 1100
    response = alice_api.patch(f"/api/v1/media/{hostile_item.pk}/", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
    hostile_item.refresh_from_db()
    assert hostile_item.title == SCRIPT


def test_two_long_idempotency_keys_that_share_their_first_255_characters_make_two_jobs(alice_api, hostile_item):
    prefix = "k" * 255
    first = alice_api.post(f"/api/v1/media/{hostile_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY=prefix + "A")
    assert first.status_code == 202
    jobs.cancel(Job.objects.get(pk=first.json()["id"]), None)
    second = alice_api.post(f"/api/v1/media/{hostile_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY=prefix + "B")
    assert second.status_code == 202
    assert second.json()["id"] != first.json()["id"]
    # The same long key again answers its own job.
    again = alice_api.post(f"/api/v1/media/{hostile_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY=prefix + "B")
    assert (again.status_code, again.json()["id"]) == (200, second.json()["id"])


def test_an_absurdly_long_idempotency_key_answers_400_json(alice_api, hostile_item):
    response = alice_api.post(f"/api/v1/media/{hostile_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="k" * 5000)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_retried_job_is_not_cancelled_again_by_the_last_attempts_cancel_flag(
    alice, hostile_item, django_capture_on_commit_callbacks
):
    from offload.jobs.runner import JobRun

    job, _ = jobs.enqueue("media.transcode", target=hostile_item, params={"profile": "h264-480p"}, user=alice)
    job = jobs.claim(job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.cancel(job, alice)  # running: the flag goes up in Redis for its worker
    assert jobs.cancel_flagged(job.pk)
    assert jobs.mark_cancelled(job)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.retry(Job.objects.get(pk=job.pk), alice)
    assert not jobs.cancel_flagged(job.pk)
    again = jobs.claim(job.pk)
    assert again is not None
    assert JobRun(again).should_stop() is False


def test_a_stale_cancel_flag_alone_does_not_stop_a_running_job(alice, hostile_item):
    # Redis could not clear the flag at the retry: the runner believes the job's row.
    from offload.jobs.runner import JobRun
    from offload.lib.redis_state import key, state_redis

    job, _ = jobs.enqueue("media.probe", target=hostile_item, user=alice)
    job = jobs.claim(job.pk)
    state_redis().set(key("cancel", job.pk), 1, ex=60)
    assert JobRun(job).should_stop() is False


def test_a_duplicate_that_finishes_between_the_failed_insert_and_the_lookup_is_not_a_500(
    alice, hostile_item, monkeypatch
):
    from offload.jobs import transitions

    twin, _ = jobs.enqueue("media.probe", target=hostile_item, user=alice)
    real_twin = transitions._active_twin
    calls = []

    def twin_finishes_meanwhile(*request):
        calls.append(request)
        if len(calls) == 1:
            # The active twin finishes just after our insert collided with it.
            Job.objects.filter(pk=twin.pk).update(status="succeeded")
            return None
        return real_twin(*request)

    monkeypatch.setattr(transitions, "_active_twin", twin_finishes_meanwhile)
    job, created = jobs.enqueue("media.probe", target=hostile_item, user=alice)
    assert created and job.pk != twin.pk
