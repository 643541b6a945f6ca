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


# --- Libraries and who sees what (shared libraries, joiners) -----------------------------


@pytest.fixture
def shared(alice, bob, staff, library_root):
    """Staff's library, shared with alice; bob has no access. One item in it."""
    folder = library_root / "shared"
    folder.mkdir()
    library = Library.objects.create(name="Shared", path=str(folder), owner=staff)
    library.members.add(alice)
    item = MediaItem.objects.create(library=library, relative_path="film.mp4", title="Shared film")
    return library, item


def test_owner_members_and_staff_see_a_library_and_its_items_nobody_else(shared, alice_api, bob_api, staff_api):
    library, item = shared
    for client in (alice_api, staff_api):
        assert [lib["id"] for lib in client.get("/api/v1/libraries/").json()["results"]] == [library.pk]
        assert client.get(f"/api/v1/media/{item.pk}/").status_code == 200
        assert client.get(f"/api/v1/libraries/{library.pk}/").json()["members"] == [library.members.get().pk]
    assert bob_api.get("/api/v1/libraries/").json()["results"] == []
    assert bob_api.get(f"/api/v1/libraries/{library.pk}/").status_code == 404
    assert bob_api.get(f"/api/v1/media/{item.pk}/").status_code == 404
    assert bob_api.get("/api/v1/media/").json()["count"] == 0


def test_a_member_gets_the_renditions_of_a_shared_library(shared, alice_api, bob_api, settings):
    _, item = shared
    poster = settings.MEDIA_ROOT / f"thumbnails/{item.pk}/poster.jpg"
    poster.parent.mkdir(parents=True)
    poster.write_bytes(b"jpeg")
    assert alice_api.get(f"/media/thumbnails/{item.pk}/poster.jpg").status_code == 200
    assert bob_api.get(f"/media/thumbnails/{item.pk}/poster.jpg").status_code == 404


def test_a_user_cannot_create_a_library_by_default(bob_api, library_root):
    (library_root / "mine").mkdir()
    response = bob_api.post("/api/v1/libraries/", {"name": "Mine", "path": "mine"}, format="json")
    assert response.status_code == 403
    assert "detail" in response.json()
    assert not Library.objects.exists()


def test_staff_create_libraries(staff_api, library_root):
    (library_root / "films").mkdir()
    response = staff_api.post("/api/v1/libraries/", {"name": "Films", "path": "films"}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("path", ["shared", "shared/inner", ".", ""])
def test_a_users_library_may_not_equal_contain_or_lie_inside_one_they_cannot_see_nor_be_a_root(
    shared, bob_api, library_root, settings, path
):
    settings.OFFLOAD_USERS_CREATE_LIBRARIES = True
    (library_root / "shared" / "inner").mkdir()
    target = str(library_root / path) if path else str(library_root)
    response = bob_api.post("/api/v1/libraries/", {"name": "Grab", "path": target}, format="json")
    assert response.status_code == 400
    reason = response.json()["path"][0]
    # The reason names no library bob cannot see.
    assert "Shared" not in reason and "shared" not in reason
    assert Library.objects.count() == 1


def test_with_the_setting_on_a_user_may_create_a_library_beside_others(shared, bob_api, library_root, settings):
    settings.OFFLOAD_USERS_CREATE_LIBRARIES = True
    (library_root / "bobs").mkdir()
    response = bob_api.post("/api/v1/libraries/", {"name": "Bob's", "path": "bobs"}, format="json")
    assert response.status_code == 201
    assert response.json()["owner"] == Library.objects.get(name="Bob's").owner_id


def test_a_member_may_not_nest_a_library_inside_one_they_only_belong_to_an_owner_may(
    shared, alice, alice_api, library_root, settings
):
    # A library of the member's own there would outlive their membership.
    settings.OFFLOAD_USERS_CREATE_LIBRARIES = True
    (library_root / "shared" / "inner").mkdir()
    response = alice_api.post("/api/v1/libraries/", {"name": "Inner", "path": "shared/inner"}, format="json")
    assert response.status_code == 400
    library, _ = shared
    library.owner = alice
    library.save(update_fields=["owner"])
    response = alice_api.post("/api/v1/libraries/", {"name": "Inner", "path": "shared/inner"}, format="json")
    assert response.status_code == 201


def test_only_staff_patch_a_library_name_and_members(shared, alice, bob, alice_api, bob_api, staff_api):
    library, item = shared
    assert alice_api.patch(f"/api/v1/libraries/{library.pk}/", {"name": "Mine"}, format="json").status_code == 403
    assert bob_api.patch(f"/api/v1/libraries/{library.pk}/", {"name": "Mine"}, format="json").status_code == 404
    bad = staff_api.patch(f"/api/v1/libraries/{library.pk}/", {"members": [999999]}, format="json")
    assert bad.status_code == 400 and "members" in bad.json()
    response = staff_api.patch(
        f"/api/v1/libraries/{library.pk}/", {"name": "Renamed", "members": [bob.pk]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed" and response.json()["members"] == [bob.pk]
    # Access follows at once, through the per-user cache too.
    assert bob_api.get(f"/api/v1/media/{item.pk}/").status_code == 200
    assert alice_api.get(f"/api/v1/media/{item.pk}/").status_code == 404


def test_a_change_of_owner_or_members_invalidates_every_affected_users_cached_answers(
    shared, alice, bob, alice_api, bob_api, django_capture_on_commit_callbacks
):
    library, item = shared
    # Warm both users' caches.
    assert alice_api.get("/api/v1/libraries/").json()["count"] == 1
    assert bob_api.get("/api/v1/libraries/").json()["count"] == 0
    assert alice_api.get(f"/api/v1/media/{item.pk}/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        library.members.remove(alice)
    assert alice_api.get("/api/v1/libraries/").json()["count"] == 0
    assert alice_api.get(f"/api/v1/media/{item.pk}/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        library.owner = bob
        library.save()
    assert bob_api.get("/api/v1/libraries/").json()["count"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        library.owner = alice
        library.save()
    # The old owner's cached list is gone as well as the new owner's.
    assert bob_api.get("/api/v1/libraries/").json()["count"] == 0
    assert alice_api.get("/api/v1/libraries/").json()["count"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        library.members.clear()
        library.members.add(bob)
    assert bob_api.get("/api/v1/libraries/").json()["count"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        library.members.clear()
    assert bob_api.get("/api/v1/libraries/").json()["count"] == 0


def test_search_finds_only_what_the_user_may_see(shared, alice, bob, settings):
    from search.query import SearchRequest, database_search

    _, item = shared
    request = SearchRequest(q="Shared")
    assert [hit["id"] for hit in database_search(alice, request)["hits"]] == [item.pk]
    assert database_search(bob, request)["hits"] == []


def test_asking_for_an_active_job_joins_it_and_a_joiners_cancel_leaves_it_running(
    shared, alice, staff, alice_api, staff_api, django_capture_on_commit_callbacks
):
    _, item = shared
    first = staff_api.post(f"/api/v1/media/{item.pk}/transcode/", {"profile": "h264-480p"}, format="json")
    assert first.status_code == 202
    job_id = first.json()["id"]
    joined = alice_api.post(f"/api/v1/media/{item.pk}/transcode/", {"profile": "h264-480p"}, format="json")
    assert (joined.status_code, joined.json()["id"]) == (200, job_id)
    assert alice_api.get(f"/api/v1/jobs/{job_id}/").status_code == 200
    assert job_id in [j["id"] for j in alice_api.get("/api/v1/jobs/").json()["results"]]
    with django_capture_on_commit_callbacks(execute=True):
        left = alice_api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert left.status_code == 202 and left.json()["left"] is True
    assert Job.objects.get(pk=job_id).status == "queued"
    assert alice_api.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    # The requester cancels for real.
    assert staff_api.post(f"/api/v1/jobs/{job_id}/cancel/").json()["status"] == "cancelled"


def test_a_user_who_cannot_see_the_target_cannot_join(shared, bob_api, staff_api):
    _, item = shared
    staff_api.post(f"/api/v1/media/{item.pk}/probe/")
    assert bob_api.post(f"/api/v1/media/{item.pk}/probe/").status_code == 404
    assert bob_api.get("/api/v1/jobs/").json()["results"] == []


def test_a_joiner_replays_the_jobs_events_from_the_moment_they_joined(shared, alice, staff):
    from offload import actions
    from offload.notifications import streams

    _, item = shared
    job, _ = actions.request_job(staff, "media.probe", item)
    before = streams.latest_seq(alice)
    job, created = actions.request_job(alice, "media.probe", item)
    assert not created
    assert streams.events_between(alice, 0) == []  # the queued event came before the join
    jobs.claim(job.pk)
    replayed = streams.events_between(alice, before)
    assert [(m["event"], m["job"]["id"]) for m in replayed] == [("started", job.pk)]


def test_live_events_name_every_recipient_and_admit_joiners(shared, alice, bob, staff, monkeypatch):
    from offload import actions
    from offload.access import job_visibility
    from offload.notifications import publisher

    sent = []
    monkeypatch.setattr(publisher, "_get", lambda: type("P", (), {"submit": lambda self, g, m: sent.append((g, m))})())
    _, item = shared
    job, _ = actions.request_job(staff, "media.probe", item)
    actions.request_job(alice, "media.probe", item)
    from django.db import transaction

    with transaction.atomic():
        event = jobs.record_event(jobs.claim(job.pk), "progress")
    # Announced events carry the seq their commit took (offload.jobs.events.announce_committed).
    event.refresh_from_db(fields=["seq"])
    publisher.on_job_event(None, event)
    groups, message = sent[-1]
    assert message["recipients"] == sorted([staff.pk, alice.pk])
    assert publisher.user_group(alice.pk) in groups and publisher.STAFF_GROUP in groups
    assert job_visibility(alice).admits(message["recipients"], message["job"]["kind"])
    assert not job_visibility(bob).admits(message["recipients"], message["job"]["kind"])


def test_events_of_a_job_nobody_joined_skip_the_joiner_read_and_a_join_brings_it_back(
    shared, alice, staff, monkeypatch, django_capture_on_commit_callbacks
):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from offload import actions
    from offload.notifications import publisher

    sent = []
    monkeypatch.setattr(publisher, "_get", lambda: type("P", (), {"submit": lambda self, g, m: sent.append(m)})())
    _, item = shared

    def member_queries(action) -> tuple[int, object]:
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
            out = action()
        return sum("offload_jobmember" in query["sql"] for query in queries), out

    def progress(job) -> None:
        with transaction.atomic():
            jobs.heartbeat(job, progress=40.0)

    # Created, claimed, and moving: nobody besides staff can have joined, and nobody is asked.
    queries, (job, _) = member_queries(lambda: actions.request_job(staff, "media.probe", item))
    assert queries == 0 and sent[-1]["event"] == "queued" and sent[-1]["recipients"] == [staff.pk]
    queries, claimed = member_queries(lambda: jobs.claim(job.pk))
    assert queries == 0 and sent[-1]["event"] == "started" and sent[-1]["recipients"] == [staff.pk]
    assert member_queries(lambda: progress(claimed))[0] == 0

    # Alice asks for the same probe while it runs: she joins it, and the running worker's next
    # events name her, though its job object was read before she joined.
    actions.request_job(alice, "media.probe", item)
    queries, _ = member_queries(lambda: progress(claimed))
    assert queries >= 1 and sent[-1]["event"] == "progress"
    assert sent[-1]["recipients"] == sorted([staff.pk, alice.pk])
    queries, _ = member_queries(lambda: jobs.succeed(claimed, {"ok": True}))
    assert sent[-1]["event"] == "succeeded" and sent[-1]["recipients"] == sorted([staff.pk, alice.pk])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bob_joined_first", [False, True], ids=["first-joiner", "second-joiner"])
def test_a_join_racing_a_workers_finish_gets_the_same_answer_live_and_in_the_replay(
    shared, alice, bob, staff, monkeypatch, bob_joined_first
):
    """The finish holds the job row; the join waits for it, then numbers itself after the event.

    Every join waits, not only the one that flags the job: a later joiner's place in the
    event order is taken under the same lock.
    """
    import threading

    from django.db import close_old_connections, transaction

    from offload import access, actions
    from offload.notifications import publisher, streams

    sent = []
    monkeypatch.setattr(publisher, "_get", lambda: type("P", (), {"submit": lambda self, g, m: sent.append(m)})())
    _, item = shared
    job, _ = actions.request_job(staff, "media.probe", item)
    claimed = jobs.claim(job.pk)
    if bob_joined_first:
        shared[0].members.add(bob)
        assert access.join_job(bob, claimed)
    holding, release, joined = threading.Event(), threading.Event(), threading.Event()

    def finish() -> None:
        try:
            with transaction.atomic():
                jobs.succeed(claimed, {"ok": True})
                holding.set()
                release.wait(10)
        finally:
            close_old_connections()

    def join() -> None:
        try:
            # As asking for the running twin does (offload.actions.request_job).
            assert access.join_job(alice, claimed)
            joined.set()
        finally:
            close_old_connections()

    worker, joiner = threading.Thread(target=finish), threading.Thread(target=join)
    worker.start()
    assert holding.wait(10)
    joiner.start()
    # The join waits on the row the finish holds.
    assert not joined.wait(1)
    release.set()
    worker.join(10)
    joiner.join(10)
    assert joined.is_set()

    succeeded = next(m for m in sent if m["event"] == "succeeded")
    replayed = [m["seq"] for m in streams.events_between(alice, 0)]
    # She joined after the finish: neither the live message nor her replay holds it.
    assert succeeded["recipients"] == sorted([staff.pk, *([bob.pk] if bob_joined_first else [])])
    assert succeeded["seq"] not in replayed


# --- Hostile media: files that name other files ------------------------------------------


def _segment_outside(tmp_path):
    from tests.support.media import make_video

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.ts"
    make_video(outside / "secret.mp4", seconds=2)
    import subprocess

    from offload.lib.ffmpeg import ffmpeg_binary

    subprocess.run(
        [
            ffmpeg_binary(),
            "-v",
            "error",
            "-y",
            "-i",
            str(outside / "secret.mp4"),
            "-c",
            "copy",
            "-f",
            "mpegts",
            str(secret),
        ],
        check=True,
    )
    return secret


@pytest.mark.parametrize(
    "content",
    [
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile:{secret}\n#EXT-X-ENDLIST\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{relative}\n#EXT-X-ENDLIST\n",
        "ffconcat version 1.0\nfile '{secret}'\n",
    ],
    ids=["hls-absolute", "hls-relative", "concat"],
)
def test_a_playlist_disguised_as_media_is_not_read_through(alice, library_root, tmp_path, content):
    from offload.lib import ffmpeg

    secret = _segment_outside(tmp_path)
    # The segment really is media: without the demuxer whitelist ffprobe reads 2 s of video.
    assert ffmpeg.technical_metadata(ffmpeg.probe(secret))["duration"]
    hostile = library_root / "film.mp4"
    relative = "../outside/secret.ts"
    hostile.write_text(content.format(secret=secret, relative=relative))
    with pytest.raises(ffmpeg.ProbeError):
        ffmpeg.probe(hostile)
    with pytest.raises(ffmpeg.ProbeError):
        ffmpeg.probe(hostile, quick=True)


def test_a_probe_job_on_a_disguised_playlist_fails_with_a_reason(alice, library_root, tmp_path):
    from tests.support.jobrunner import drain

    secret = _segment_outside(tmp_path)
    (library_root / "film.mp4").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile:{secret}\n#EXT-X-ENDLIST\n"
    )
    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="film.mp4")
    job, _ = jobs.enqueue("media.probe", target=item, user=alice)
    drain()
    job.refresh_from_db()
    item.refresh_from_db()
    assert job.status == "failed"
    assert "hls" in job.error
    assert item.duration is None


def test_ffmpeg_refuses_a_file_input_without_the_demuxer_whitelist(tmp_path):
    from offload.lib import ffmpeg

    with pytest.raises(ValueError, match="format_whitelist"):
        ffmpeg.run_ffmpeg(["-i", "file:/x.mp4", "-f", "null", "-"], duration=None, timeout=5)


# --- Production-safe settings, and the web server's trust in forwarding headers ----------


def _python(code: str, tmp_path, *, drop=(), **env: str):
    import os
    import subprocess
    import sys

    from tests.support.cluster import BASE_DIR

    base = {k: v for k, v in os.environ.items() if k not in (*drop, "DJANGO_SETTINGS_MODULE")}
    return subprocess.run(
        [sys.executable, *code] if isinstance(code, list) else [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_settings_refuse_to_start_without_a_secret_key(tmp_path):
    done = _python("import django; django.setup()", tmp_path, drop=("SECRET_KEY", "DEBUG"))
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr


def test_debug_is_off_unless_asked_for(tmp_path):
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    done = _python(code, tmp_path, drop=("DEBUG",), SECRET_KEY="x" * 60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_check_deploy_fails_on_a_development_key_and_the_default_typesense_key(tmp_path):
    import secrets

    args = ["manage.py", "check", "--deploy"]
    done = _python(
        args, tmp_path, drop=("TYPESENSE_API_KEY",), SECRET_KEY="offload-dev-insecure-" + "k" * 50, DEBUG="0"
    )
    assert done.returncode != 0
    assert "offload.E009" in done.stderr + done.stdout
    assert "offload.E010" in done.stderr + done.stdout
    good = _python(
        args, tmp_path, SECRET_KEY=secrets.token_urlsafe(50), DEBUG="0", TYPESENSE_API_KEY=secrets.token_urlsafe(20)
    )
    assert "offload.E009" not in good.stderr + good.stdout and "offload.E010" not in good.stderr + good.stdout


def test_make_run_sets_development_values_itself_and_keeps_its_key(tmp_path):
    from tests.support.servers import run_script

    run = run_script()
    env: dict[str, str] = {}
    notes = run.development_settings(env, tmp_path)
    assert env["DEBUG"] == "1" and env["SECRET_KEY"].startswith("offload-dev-insecure-")
    assert len(notes) == 2
    key_file = tmp_path / run.DEV_SECRET_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    again: dict[str, str] = {}
    run.development_settings(again, tmp_path)
    assert again["SECRET_KEY"] == env["SECRET_KEY"]
    given = {"SECRET_KEY": "real", "DEBUG": "0"}
    assert run.development_settings(given, tmp_path) == [] and given == {"SECRET_KEY": "real", "DEBUG": "0"}


def test_the_web_server_believes_forwarding_headers_only_from_trusted_proxies():
    from tests.support.servers import run_script

    run = run_script()
    assert "--no-proxy-headers" in run.web_server_args({}, 8000)
    trusting = run.web_server_args({"OFFLOAD_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16"}, 8000)
    assert trusting[trusting.index("--forwarded-allow-ips") + 1] == "10.0.0.1,10.1.0.0/16"
    assert run.web_server_args({}, 8000)[run.web_server_args({}, 8000).index("--ws-max-size") + 1] == "4096"


@pytest.mark.slow
def test_a_forged_x_forwarded_for_does_not_escape_the_anonymous_rate_limit(asgi_server):
    import requests

    server = asgi_server(OFFLOAD_RATE_API_ANON="3/60")
    codes = [
        requests.get(
            f"{server.url}/api/v1/jobs/", headers={"X-Forwarded-For": f"203.0.113.{n}"}, timeout=10
        ).status_code
        for n in range(6)
    ]
    assert codes[:3] == [401, 401, 401]
    assert set(codes[3:]) == {429}


# --- Errors are JSON for programs; /metrics is not for everyone -------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/api/v1/libraries/", {"data": "x" * (20 * 1024 * 1024), "content_type": "application/json"}, 400),
        ("get", "/api/v1/libraries/", {"HTTP_HOST": "evil.example"}, 400),
        ("post", "/healthz/ready", {}, 405),
        ("post", "/metrics", {}, 405),
        ("post", "/healthz/live", {}, 405),
    ],
)
def test_errors_of_the_api_probes_and_metrics_are_json_not_html(staff, settings, method, path, kwargs, status):
    settings.DEBUG = False
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    token = Token.objects.create(user=staff).key
    response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Token {token}", **kwargs)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


def test_a_csrf_refusal_under_the_api_is_json(rf):
    import json

    from offload.api.errors import csrf_failure

    response = csrf_failure(rf.post("/api/v1/anything/"), "CSRF token missing.")
    assert response.status_code == 403 and json.loads(response.content)["detail"].startswith("CSRF")
    assert csrf_failure(rf.post("/admin/login/"), "x")["Content-Type"].startswith("text/html")


def test_metrics_are_served_to_loopback_or_the_bearer_token_and_refused_to_others(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403 and refused["Content-Type"].startswith("application/json")
    settings.METRICS_TOKEN = "scrape-token"
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token").status_code == 200
    )
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope").status_code == 403
    settings.OFFLOAD_METRICS_ALLOWED_IPS = ["203.0.113.0/24"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200
    # A forged X-Forwarded-For from an untrusted client changes nothing.
    settings.OFFLOAD_METRICS_ALLOWED_IPS = ["127.0.0.1"]
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


# --- /media/ answers Range requests -------------------------------------------------------


def test_media_answer_a_range_with_206_and_the_bytes_asked_for(published, alice_api, settings):
    path = settings.MEDIA_ROOT / f"renditions/{published.pk}/h264-480p.mp4"
    body = bytes(range(256)) * 40  # 10,240 bytes
    path.write_bytes(body)
    url = f"/media/renditions/{published.pk}/h264-480p.mp4"
    whole = alice_api.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    for header, first, last in (("bytes=0-99", 0, 99), ("bytes=10000-", 10000, 10239), ("bytes=-40", 10200, 10239)):
        part = alice_api.get(url, HTTP_RANGE=header)
        assert part.status_code == 206, header
        assert part["Content-Range"] == f"bytes {first}-{last}/{len(body)}"
        assert part["Accept-Ranges"] == "bytes"
        assert b"".join(part.streaming_content) == body[first : last + 1]
    # Past the end: 416 with the size.
    beyond = alice_api.get(url, HTTP_RANGE="bytes=20000-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(body)}"
    # A Range does not get around access.
    assert alice_api.get(url, HTTP_RANGE="bytes=0-1").status_code == 206


def test_a_range_request_for_someone_elses_media_is_404(published, bob_api):
    assert bob_api.get(f"/media/thumbnails/{published.pk}/poster.jpg", HTTP_RANGE="bytes=0-1").status_code == 404


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=", "pages=0-1", "bytes=5-2", "bytes=" + "9" * 30])
def test_a_malformed_range_is_refused_not_a_500(header):
    from offload.web.media import byte_range

    assert byte_range(header, 1000) is None


# --- The job spine: lost queue rows, one partial folder per attempt ----------------------


def test_a_queued_job_whose_queue_row_was_deleted_is_queued_again_by_the_reaper(alice, settings):
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import OrmQ

    from offload.jobs import reaper
    from tests.support.jobrunner import drain

    job, _ = jobs.enqueue("system.noop", user=alice)
    fresh, _ = jobs.enqueue("system.noop", params={"n": 2}, user=alice)
    OrmQ.objects.all().delete()  # as the django-q admin allows
    Job.objects.filter(pk=job.pk).update(
        queued_at=timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 1)
    )
    # Only the job that has waited past the stale window counts as lost.
    assert reaper.reap_stale_jobs() == 1
    assert reaper.reap_stale_jobs() == 0  # its new row is there now
    drain()
    job.refresh_from_db()
    fresh.refresh_from_db()
    assert job.status == "succeeded"
    assert fresh.status == "queued"


def test_each_attempt_works_in_its_own_partial_folder_and_cleans_only_its_own(alice, hostile_item, settings):
    from offload.lib import outputs

    job, _ = jobs.enqueue("media.thumbnail", target=hostile_item, user=alice)
    first = jobs.claim(job.pk)
    first_dir = outputs.fresh_partial_dir(first)
    (first_dir / "poster.jpg").write_bytes(b"first attempt")
    # The first attempt's heartbeat went stale while it still ran: a second attempt takes over.
    second = Job.objects.get(pk=job.pk)
    second.attempts = first.attempts + 1
    second_dir = outputs.fresh_partial_dir(second)
    (second_dir / "poster.jpg").write_bytes(b"second attempt")
    assert first_dir != second_dir
    # The older attempt's leftovers went when the newer one started; its cleanup spares the newer one.
    assert not first_dir.exists()
    outputs.remove_partial_dir(first)
    assert (second_dir / "poster.jpg").read_bytes() == b"second attempt"
    # An older attempt that starts late does not remove a newer attempt's folder either.
    outputs.fresh_partial_dir(first)
    assert (second_dir / "poster.jpg").exists()
    outputs.remove_partial_dir(first)
    outputs.remove_partial_dir(second)
    assert not (settings.MEDIA_ROOT / ".partial" / f"job-{job.pk}").exists()


# --- Passwords and the admin's rate-limit reset -------------------------------------------


@pytest.mark.parametrize("password", ["short", "123456789012345", "password1234", "alice@example.com"])
def test_weak_passwords_are_refused(alice, password):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password(password, alice)


def test_resetting_rate_limits_needs_a_permission_staff_status_alone_does_not_give(db, alice, settings):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from offload.lib import limits
    from tests.support.people import make_user

    operator = make_user("operator")
    operator.is_staff = True
    operator.save()
    client = Client()
    client.force_login(operator)
    url = reverse("admin:offload_cache")
    assert client.get(url).status_code == 200
    assert "Reset one client" not in client.get(url).content.decode()
    limits.acquire("api_user", f"user:{alice.pk}", 1, 60)
    assert client.post(url, {"who": f"user:{alice.pk}"}).status_code == 403
    assert not limits.acquire("api_user", f"user:{alice.pk}", 1, 60).allowed
    operator.user_permissions.add(Permission.objects.get(codename="reset_rate_limits"))
    operator = type(operator).objects.get(pk=operator.pk)  # permissions are cached per object
    client.force_login(operator)
    assert client.post(url, {"who": f"user:{alice.pk}", "post": "yes"}).status_code == 302
    assert limits.acquire("api_user", f"user:{alice.pk}", 1, 60).allowed


# --- The websocket: origin, unauthenticated sockets, message rate, resumes, revoked access ----


def _ws(origin: str = "http://testserver", client=("203.0.113.7", 5000)):
    from config.asgi import application
    from tests.support.asgi_client import InProcessWebsocket

    return InProcessWebsocket(application, "/ws/events/", origin=origin, client=client)


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("http://testserver", True),
        ("http://testserver:80", True),
        ("http://testserver:9999", False),
        # Host without a port (TLS ended at a proxy): the Origin's default port is the one.
        ("https://testserver", True),
        ("https://testserver:8443", False),
        ("http://evil.example", False),
        ("null", False),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_the_websocket_origin_must_be_this_site_port_included(origin, accepted):
    import asyncio

    async def attempt() -> bool:
        socket = _ws(origin)
        try:
            return await socket.connect()
        finally:
            await socket.disconnect()

    assert asyncio.run(attempt()) is accepted


@pytest.mark.django_db(transaction=True)
def test_unauthenticated_sockets_are_limited_per_address(settings):
    import asyncio

    settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, "ws_anon": "2/60"}

    async def attempts() -> list[bool]:
        answers = []
        for address in ("203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2"):
            socket = _ws(client=(address, 4000))
            answers.append(await socket.connect())
            await socket.disconnect()
        return answers

    assert asyncio.run(attempts()) == [True, True, False, True]


@pytest.mark.django_db(transaction=True)
def test_a_socket_that_sends_too_many_messages_is_closed(alice, settings):
    import asyncio

    settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, "ws_message": "3/60"}
    token = Token.objects.create(user=alice).key

    async def flood() -> tuple[list[dict], dict]:
        socket = _ws()
        assert await socket.connect()
        await socket.send_json_to({"type": "auth", "token": token})
        await socket.receive_json_from()  # hello
        answers = []
        for _ in range(4):
            await socket.send_json_to({"type": "ping"})
        for _ in range(4):
            answers.append(await socket.receive_json_from())
        closed = await socket.receive_output(5)
        await socket.disconnect()
        return answers, closed

    answers, closed = asyncio.run(flood())
    assert [a["type"] for a in answers] == ["pong", "pong", "pong", "error"]
    assert "Too many messages" in answers[3]["detail"]
    assert closed == {"type": "websocket.close", "code": 4429}


@pytest.mark.django_db(transaction=True)
def test_a_resume_from_zero_is_bounded_and_says_there_is_more(staff, monkeypatch):
    import asyncio

    from offload.notifications import consumers, streams

    monkeypatch.setattr(streams, "REPLAY_PAGE", 2)
    monkeypatch.setattr(consumers, "RESUME_MAX_PAGES", 2)
    for n in range(6):
        jobs.enqueue("system.noop", params={"n": n}, user=staff)
    token = Token.objects.create(user=staff).key

    async def resume() -> list[dict]:
        socket = _ws()
        assert await socket.connect()
        await socket.send_json_to({"type": "auth", "token": token})
        await socket.receive_json_from()  # hello
        await socket.send_json_to({"type": "resume", "after": 0})
        got = [await socket.receive_json_from() for _ in range(5)]
        await socket.disconnect()
        return got

    got = asyncio.run(resume())
    assert [m["type"] for m in got] == ["job"] * 4 + ["resumed"]
    assert got[-1]["more"] is True and got[-1]["count"] == 4


@pytest.mark.parametrize("change", ["revoke_token", "lose_staff", "deactivate"])
@pytest.mark.django_db(transaction=True)
def test_an_open_socket_is_closed_when_its_access_is_revoked(staff, settings, change):
    import asyncio

    from asgiref.sync import sync_to_async

    settings.OFFLOAD_WS_HEARTBEAT_SECONDS = 0.2
    token = Token.objects.create(user=staff)

    def revoke() -> None:
        if change == "revoke_token":
            token.delete()
        elif change == "lose_staff":
            type(staff).objects.filter(pk=staff.pk).update(is_staff=False)
        else:
            type(staff).objects.filter(pk=staff.pk).update(is_active=False)

    async def watch() -> list[dict]:
        socket = _ws()
        assert await socket.connect()
        await socket.send_json_to({"type": "auth", "token": token.key})
        assert (await socket.receive_json_from())["type"] == "hello"
        assert (await socket.receive_json_from())["type"] == "heartbeat"
        await sync_to_async(revoke)()
        outputs = []
        while True:
            message = await socket.receive_output(5)
            outputs.append(message)
            if message["type"] == "websocket.close":
                break
        await socket.disconnect()
        return outputs

    outputs = asyncio.run(watch())
    assert outputs[-1] == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize("debug", [True, False])
def test_a_bad_host_under_the_api_is_json_even_with_debug_on(db, settings, debug):
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/libraries/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "Traceback" not in response.content.decode()


def test_a_scan_does_not_follow_a_link_into_another_librarys_folder(alice, bob, library_root):
    from tests.support.jobrunner import drain
    from tests.support.media import make_video

    alices = library_root / "alice"
    bobs = library_root / "bob"
    make_video(alices / "private.mp4")
    make_video(bobs / "own.mp4")
    (bobs / "peek.mp4").symlink_to(alices / "private.mp4")
    (bobs / "peek-dir").symlink_to(alices)
    Library.objects.create(name="Alice's", path=str(alices), owner=alice)
    bobs_library = Library.objects.create(name="Bob's", path=str(bobs), owner=bob)
    jobs.enqueue("library.scan", target=bobs_library, user=bob)
    drain()
    assert sorted(bobs_library.items.values_list("relative_path", flat=True)) == ["own.mp4"]
