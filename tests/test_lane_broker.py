"""The lane broker hands each due queue row to one taker, people's first, in one statement."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from offload import jobs
from offload.jobs import prepared
from offload.jobs.lanes import LaneORMBroker, broker_for, lane_queue
from offload.models import JobPriority
from tests.support.sessions import end_session, health_checks, on_check_clock

pytestmark = pytest.mark.django_db(transaction=True)


def taken_job_ids(batch) -> list[int]:
    return [SignedPackage.loads(payload)["args"][0] for _, payload in batch or []]


def test_a_poll_takes_the_peoples_row_first_in_one_statement(alice):
    backlog = [jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(3)]
    asked, _ = jobs.enqueue("system.noop", params={"n": "asked"}, user=alice, priority=JobPriority.PERSON)
    broker = broker_for(lane_queue("default"))
    with CaptureQueriesContext(connection) as queries:
        first = broker.dequeue()
    assert taken_job_ids(first) == [asked.pk]
    assert len(queries) == 1
    rest = [taken_job_ids(broker.dequeue())[0] for _ in backlog]
    assert rest == [job.pk for job in backlog]


def test_takers_racing_for_the_same_rows_never_share_one(alice):
    queued = {jobs.enqueue("system.noop", params={"n": n}, user=alice)[0].pk for n in range(30)}
    taken: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        broker = broker_for(lane_queue("default"))
        try:
            while True:
                batch = broker.dequeue()
                if not batch:
                    return
                with lock:
                    taken.extend(taken_job_ids(batch))
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(queued)


def idle_broker(monkeypatch, clock: list[float]) -> LaneORMBroker:
    """A lane's broker polling an empty queue without its pause, on a clock the test moves."""
    on_check_clock(monkeypatch, clock)
    broker = LaneORMBroker(lane_queue("default"))
    monkeypatch.setattr(broker, "wait_for_work", lambda seconds: False)
    return broker


def test_polls_health_check_their_connection_once_a_second_not_each_time(monkeypatch):
    clock = [1000.0]
    broker = idle_broker(monkeypatch, clock)
    checks = health_checks(monkeypatch, clock)
    for _ in range(20):
        assert broker.dequeue() is None
    clock[0] += prepared.CHECK_INTERVAL
    for _ in range(20):
        assert broker.dequeue() is None
    assert checks == [1000.0, 1000.0 + prepared.CHECK_INTERVAL]


def test_a_poll_on_a_connection_the_database_dropped_takes_its_row_on_a_new_one(alice, monkeypatch):
    broker = idle_broker(monkeypatch, [1000.0])
    assert broker.dequeue() is None
    job, _ = jobs.enqueue("system.noop", user=alice)
    end_session(connection)
    assert taken_job_ids(broker.dequeue()) == [job.pk]


def test_acknowledges_health_check_their_connection_once_a_second_not_each_time(alice, monkeypatch):
    for n in range(3):
        jobs.enqueue("system.noop", params={"n": n}, user=alice)
    clock = [1000.0]
    broker = idle_broker(monkeypatch, clock)
    taken = [broker.dequeue()[0][0] for _ in range(3)]
    checks = health_checks(monkeypatch, clock)
    clock[0] += prepared.CHECK_INTERVAL
    for ack_id in taken:
        broker.acknowledge(ack_id)
    assert checks == [1000.0 + prepared.CHECK_INTERVAL]
    assert not OrmQ.objects.filter(pk__in=taken).exists()


def test_an_acknowledge_is_one_statement_outside_any_transaction(alice, monkeypatch):
    jobs.enqueue("system.noop", user=alice)
    broker = broker_for(lane_queue("default"))
    ((ack_id, _),) = broker.dequeue()
    transactions = []
    set_autocommit = connection.set_autocommit
    monkeypatch.setattr(
        connection, "set_autocommit", lambda on, **kw: transactions.append(on) or set_autocommit(on, **kw)
    )
    with CaptureQueriesContext(connection) as sent:
        broker.acknowledge(ack_id)
    assert [query["sql"].split()[0] for query in sent] == ["DELETE"]
    assert transactions == []
    assert not OrmQ.objects.filter(pk=ack_id).exists()
