"""A django-q2 worker's connection: health-checked once a second, not before every task, and still
good after the database dropped it."""

import multiprocessing

import psycopg
import pytest
from django.db import connection
from django_q.signing import SignedPackage
from django_q.worker import worker

from offload import jobs
from offload.jobs import delivery, lanes
from offload.jobs.lanes import broker_for, lane_queue
from offload.models import Job, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


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
    monkeypatch.setattr(delivery, "monotonic", lambda: clock[0])
    checks = []
    usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(clock[0]) or usable())

    def a_moment_later(done: dict) -> None:
        clock[0] += lanes.CHECK_INTERVAL / 2

    results = run_worker(tasks, between=a_moment_later)
    assert [result["result"] for result in results] == ["succeeded"] * 4
    assert set(Job.objects.filter(pk__in=[job.pk for job in queued]).values_list("status", flat=True)) == {
        JobStatus.SUCCEEDED
    }
    # django-q2 asks for a check before each of the four tasks: the first and the third are made.
    assert checks == [1e9, 1e9 + lanes.CHECK_INTERVAL]


def test_a_task_taken_on_a_connection_the_database_dropped_runs_on_a_new_one(alice, monkeypatch):
    monkeypatch.setattr(delivery, "monotonic", lambda: 1e9)
    first, second = (jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(2))
    tasks = taken_tasks(2)
    params = connection.get_connection_params()
    dsn = {key: params[key] for key in ("dbname", "user", "password", "host", "port") if params.get(key)}

    def drop_the_workers_connection(done: dict) -> None:
        if done["args"] != (first.pk,):
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        with psycopg.connect(**dsn, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])

    # The second task comes within the check's interval, so nothing checks the dead connection first.
    results = run_worker(tasks, between=drop_the_workers_connection)
    assert [result["result"] for result in results] == ["succeeded", "succeeded"]
    assert {Job.objects.get(pk=first.pk).status, Job.objects.get(pk=second.pk).status} == {JobStatus.SUCCEEDED}
