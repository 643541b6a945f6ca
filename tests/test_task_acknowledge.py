"""A job's finish acknowledges its task: django-q2's own worker and monitor, run in this process."""

import multiprocessing
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ
from django_q.monitor import monitor
from django_q.signing import SignedPackage
from django_q.worker import worker

from offload import jobs
from offload.jobs import control
from offload.jobs.lanes import broker_for, lane_queue
from offload.models import Job, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)

DELETES_A_QUEUE_ROW = re.compile(r"DELETE FROM \"?django_q_ormq\"?", re.IGNORECASE)


def take_task(lane: str = "default") -> tuple[int, dict]:
    """The lane's next task as the cluster's pusher hands it to a worker."""
    ((ack_id, payload),) = broker_for(lane_queue(lane)).dequeue()
    task = SignedPackage.loads(payload)
    task["ack_id"] = ack_id
    return ack_id, task


def run_worker(task: dict) -> dict:
    """django-q2's worker loop over this one task: the task as it hands it to the monitor."""
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    tasks.put(task)
    tasks.put("STOP")
    worker(tasks, results, multiprocessing.Value("f", -1))
    return results.get(timeout=10)


def run_monitor(done: dict, lane: str = "default") -> list[str]:
    """django-q2's monitor over the finished task: the statements it sent."""
    results = multiprocessing.Queue()
    results.put(done)
    results.put("STOP")
    with CaptureQueriesContext(connection) as sent:
        monitor(results, broker_for(lane_queue(lane)))
    return [query["sql"] for query in sent]


def test_a_finished_job_leaves_the_monitor_nothing_to_acknowledge(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    ack_id, task = take_task()
    done = run_worker(task)
    assert done["success"] and done["result"] == "succeeded"
    # The finish deleted the row in its own statement and took the task's ack_id with it.
    assert not OrmQ.objects.filter(pk=ack_id).exists()
    assert not done.get("ack_id")
    assert not [sql for sql in run_monitor(done) if DELETES_A_QUEUE_ROW.search(sql)]
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_a_finish_that_queues_next_stages_acknowledges_in_its_transaction(alice):
    jobs.enqueue("system.noop", user=alice, then=["system.noop"])
    ack_id, task = take_task()
    done = run_worker(task)
    assert done["result"] == "succeeded"
    assert not OrmQ.objects.filter(pk=ack_id).exists()
    assert not done.get("ack_id")
    # The next stage's task is queued with the same commit, and stays for its own delivery.
    assert Job.objects.filter(status=JobStatus.QUEUED).count() == OrmQ.objects.count() == 1


def test_a_second_delivery_of_a_finished_job_is_acknowledged_by_the_monitor(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    _, first = take_task()
    # The same job's task delivered again (another queue row, as the reaper writes).
    again = SignedPackage.dumps({**first, "ack_id": None})
    OrmQ.objects.create(key=lane_queue("default"), payload=again, lock=job.created_at)
    second_ack, second = take_task()
    assert run_worker(first)["result"] == "succeeded"
    done = run_worker(second)
    assert done["result"] == control.NOT_CLAIMED
    # Not this delivery's finish: its row is still there, for the monitor to delete.
    assert done["ack_id"] == second_ack
    assert OrmQ.objects.filter(pk=second_ack).exists()
    assert [sql for sql in run_monitor(done) if DELETES_A_QUEUE_ROW.search(sql)]
    assert not OrmQ.objects.exists()
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_a_job_that_raises_into_the_worker_keeps_its_task_for_redelivery(alice, monkeypatch):
    from offload.jobs import transitions

    job, _ = jobs.enqueue("system.noop", user=alice)
    ack_id, task = take_task()

    def database_gone(*args, **kwargs):
        raise connection.Database.OperationalError("the server closed the connection")

    monkeypatch.setattr(transitions, "_finish", database_gone)
    done = run_worker(task)
    assert not done["success"]
    # Nothing finished: the row stays (django-q2 delivers it again after `retry`), and the monitor leaves it.
    run_monitor(done)
    assert OrmQ.objects.filter(pk=ack_id).exists()
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
