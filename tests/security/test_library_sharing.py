"""Libraries and who sees what: owners, members, staff and the joiners of a job."""

import pytest

from offload import jobs
from offload.models import Job, Library, MediaItem


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
