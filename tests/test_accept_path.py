"""The accept path: a person's job request checked, deduplicated and queued in one round trip."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from offload.jobs.queue import EXECUTE
from offload.models import Job, JobEvent, JobMember, JobPriority, JobStatus, Library, MediaItem
from tests.support.people import api_client_for, make_user


@pytest.fixture
def alices_item(alice, library_root):
    library = Library.objects.create(name="Alice's", path=str(library_root / "alice"), owner=alice)
    return MediaItem.objects.create(library=library, relative_path="clip.mp4")


@pytest.fixture
def other_item(alices_item):
    return MediaItem.objects.create(library=alices_item.library, relative_path="other.mp4")


def round_trips(client, path: str, **headers) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(path, **headers)
    return response, [q["sql"] for q in queries.captured_queries]


def test_an_accepted_probe_is_one_round_trip_to_postgresql(alice_api, alices_item, other_item):
    # The process's first request also takes a spare job id; every later one carries its own.
    assert alice_api.post(f"/api/v1/media/{other_item.pk}/probe/").status_code == 202
    response, sql = round_trips(alice_api, f"/api/v1/media/{alices_item.pk}/probe/")
    assert response.status_code == 202, response.json()
    assert len(sql) == 1, sql
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.kind, job.status, job.target_id, job.requested_by_id) == (
        "media.probe",
        "queued",
        alices_item.pk,
        job.requested_by_id,
    )
    assert job.priority == JobPriority.PERSON
    # Its first event and its task were written by the same statement.
    assert list(JobEvent.objects.filter(job=job).values_list("event", flat=True)) == ["queued"]
    (task,) = [row for row in OrmQ.objects.all() if row.task["args"][0] == job.pk]
    assert task.task["id"] == job.task_id
    assert response["Location"] == f"/api/v1/jobs/{job.pk}/"


def test_the_accept_statement_is_prepared_once_per_connection(alice_api, alices_item, other_item):
    for item in (alices_item, other_item):
        assert alice_api.post(f"/api/v1/media/{item.pk}/probe/").status_code == 202
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%replay AS%"])
        # Parsed by PostgreSQL for the session's first request, used as it is by the later ones.
        assert cursor.fetchone()[0] == 1


def test_the_answer_is_built_from_what_the_statement_wrote(alice_api, alices_item):
    body = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/").json()
    assert body == alice_api.get(body["url"]).json()


def test_an_identical_active_job_answers_200_in_one_round_trip(alice_api, alices_item):
    first = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/").json()
    response, sql = round_trips(alice_api, f"/api/v1/media/{alices_item.pk}/probe/")
    assert response.status_code == 200
    assert response.json()["id"] == first["id"]
    assert len(sql) == 1, sql
    assert Job.objects.count() == 1


def test_a_replayed_idempotency_key_answers_the_same_job_in_one_round_trip(alice_api, alices_item):
    first = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 202
    Job.objects.filter(pk=first.json()["id"]).update(status=JobStatus.SUCCEEDED)
    response, sql = round_trips(alice_api, f"/api/v1/media/{alices_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 200
    assert response.json()["id"] == first.json()["id"]
    assert len(sql) == 1, sql


def test_a_key_reused_for_another_target_answers_422(alice_api, alices_item, other_item):
    assert alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 202
    reused = alice_api.post(f"/api/v1/media/{other_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="k-2")
    assert reused.status_code == 422
    assert Job.objects.filter(target_id=other_item.pk).count() == 0


def test_bob_gets_404_for_alices_item_and_nothing_is_written(bob_api, alices_item):
    for path in (
        f"/api/v1/media/{alices_item.pk}/probe/",
        "/api/v1/media/99999999/probe/",
        "/api/v1/media/99999999999999999999999/probe/",
        "/api/v1/media/-1/probe/",
        "/api/v1/media/abc/probe/",
        "/api/v1/media/1e3/probe/",
    ):
        assert bob_api.post(path).status_code == 404, path
    assert not Job.objects.exists()
    assert not OrmQ.objects.exists()
    assert not JobEvent.objects.exists()


def test_a_member_and_staff_may_ask_and_bob_joins_through_membership(alice, alices_item, staff_api):
    carol = make_user("carol")
    alices_item.library.members.add(carol)
    carol_api = api_client_for(carol)
    mine = api_client_for(alice).post(f"/api/v1/media/{alices_item.pk}/probe/").json()
    # Carol's identical request answers Alice's job and makes her a joiner (the general path's join).
    joined = carol_api.post(f"/api/v1/media/{alices_item.pk}/probe/")
    assert joined.status_code == 200
    assert joined.json()["id"] == mine["id"]
    assert JobMember.objects.filter(job_id=mine["id"], user=carol).exists()
    assert staff_api.post(f"/api/v1/media/{alices_item.pk}/enrich/").status_code == 202


def test_a_person_asking_for_a_backlogged_job_promotes_it(alice, alice_api, alices_item):
    from offload import jobs

    backlog, _ = jobs.enqueue("media.probe", target=alices_item, user=alice)
    assert backlog.priority == JobPriority.PIPELINE
    response = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/")
    assert response.status_code == 200
    assert Job.objects.get(pk=backlog.pk).priority == JobPriority.PERSON


@pytest.mark.django_db(transaction=True)
def test_requests_racing_for_the_same_job_all_answer_the_one_that_won(alice, alices_item):
    clients = [api_client_for(alice) for _ in range(6)]
    barrier = threading.Barrier(len(clients))
    answers = []

    def ask(client):
        barrier.wait()
        response = client.post(f"/api/v1/media/{alices_item.pk}/probe/")
        answers.append((response.status_code, response.json()["id"]))
        connection.close()

    threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (job,) = Job.objects.all()
    assert sorted(code for code, _ in answers) == [200] * 5 + [202]
    assert {job_id for _, job_id in answers} == {job.pk}
    assert [row.task["args"] for row in OrmQ.objects.all() if row.task["func"] == EXECUTE] == [(job.pk,)]
    # The one event, numbered as it committed.
    (event,) = JobEvent.objects.filter(job=job)
    assert event.seq is not None


@pytest.mark.django_db(transaction=True)
def test_an_accepted_probe_asks_redis_once(alice_api, alices_item, other_item, monkeypatch):
    import redis.connection

    # The first request looks the token up in the database and keeps its entry.
    assert alice_api.post(f"/api/v1/media/{other_item.pk}/probe/").status_code == 202
    this_thread = threading.get_ident()
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        if threading.get_ident() == this_thread:
            sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    response = alice_api.post(f"/api/v1/media/{alices_item.pk}/probe/")
    assert response.status_code == 202
    # The token, both rate-limit windows and the job answers' versions: one round trip.
    assert len(sent) == 1, sent
    assert response["RateLimit-Limit"]
