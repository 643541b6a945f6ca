"""The spine's connections: health-checked once a second, not before every request or task, and
still good after the database dropped them (the accept path in the web process, the claim in a
django-q2 worker)."""

import multiprocessing

import pytest
from django.db import close_old_connections, connection
from django_q.signing import SignedPackage
from django_q.worker import worker

from offload import jobs
from offload.jobs import prepared
from offload.jobs.lanes import broker_for, lane_queue
from offload.models import Job, JobStatus, Library, MediaItem
from tests.support.sessions import end_session, health_checks, on_check_clock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def items(alice, library_root):
    library = Library.objects.create(name="Alice's", path=str(library_root / "alice"), owner=alice)
    return [MediaItem.objects.create(library=library, relative_path=f"clip{n}.mp4") for n in range(4)]


def post_as_served(client, path: str):
    """A POST as a server handles it: Django's request_started lets stale connections go and asks
    for a health check (the test client leaves that signal out)."""
    close_old_connections()
    return client.post(path)


def test_accepts_in_quick_succession_make_one_health_check_a_second(alice_api, items, monkeypatch):
    post_as_served(alice_api, f"/api/v1/media/{items[0].pk}/probe/")  # the connection is open
    clock = [1e9]
    on_check_clock(monkeypatch, clock)
    checks = health_checks(monkeypatch, clock)
    for item in items[1:]:
        assert post_as_served(alice_api, f"/api/v1/media/{item.pk}/probe/").status_code == 202
        clock[0] += prepared.CHECK_INTERVAL / 2
    # Asked for before each of the three; made for the first and the third.
    assert checks == [1e9, 1e9 + prepared.CHECK_INTERVAL]


def test_an_accept_on_a_connection_the_database_dropped_answers_202(alice_api, items, monkeypatch):
    on_check_clock(monkeypatch, [1e9])
    assert post_as_served(alice_api, f"/api/v1/media/{items[0].pk}/probe/").status_code == 202
    assert post_as_served(alice_api, f"/api/v1/media/{items[1].pk}/probe/").status_code == 202
    end_session(connection)
    # Within the check's interval: nothing checks the dead connection before the statement.
    response = post_as_served(alice_api, f"/api/v1/media/{items[2].pk}/probe/")
    assert response.status_code == 202, response.content
    assert Job.objects.get(pk=response.json()["id"]).target_id == items[2].pk


def taken_tasks(count: int) -> list[dict]:
    """The lane's next tasks as the cluster's pusher hands them to a worker."""
    broker = broker_for(lane_queue("default"))
    tasks = []
    for _ in range(count):
        ((ack_id, payload),) = broker.dequeue()
        tasks.append({**SignedPackage.loads(payload), "ack_id": ack_id})
    return tasks


def run_worker(tasks: list[dict], between=lambda done: None) -> list[dict]:
    """django-q2's worker loop over these tasks, in order; `between` runs after each one is done."""
    results = []
    for task in tasks:
        queue, out = multiprocessing.Queue(), multiprocessing.Queue()
        queue.put(task)
        queue.put("STOP")
        worker(queue, out, multiprocessing.Value("f", -1))
        results.append(out.get(timeout=10))
        between(results[-1])
    return results


def test_a_worker_health_checks_its_connection_once_a_second_not_before_every_task(alice, monkeypatch):
    queued = [jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(4)]
    tasks = taken_tasks(4)
    clock = [1e9]
    on_check_clock(monkeypatch, clock)
    checks = health_checks(monkeypatch, clock)

    def a_moment_later(done: dict) -> None:
        clock[0] += prepared.CHECK_INTERVAL / 2

    results = run_worker(tasks, between=a_moment_later)
    assert [result["result"] for result in results] == ["succeeded"] * 4
    assert set(Job.objects.filter(pk__in=[job.pk for job in queued]).values_list("status", flat=True)) == {
        JobStatus.SUCCEEDED
    }
    # django-q2 asks for a check before each of the four tasks: the first and the third are made.
    assert checks == [1e9, 1e9 + prepared.CHECK_INTERVAL]


def test_a_task_taken_on_a_connection_the_database_dropped_runs_on_a_new_one(alice, monkeypatch):
    on_check_clock(monkeypatch, [1e9])
    first, second = (jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(2))
    tasks = taken_tasks(2)

    def drop_the_workers_connection(done: dict) -> None:
        if done["args"] == (first.pk,):
            end_session(connection)

    # The second task comes within the check's interval, so nothing checks the dead connection first.
    results = run_worker(tasks, between=drop_the_workers_connection)
    assert [result["result"] for result in results] == ["succeeded", "succeeded"]
    assert {Job.objects.get(pk=first.pk).status, Job.objects.get(pk=second.pk).status} == {JobStatus.SUCCEEDED}
