"""The lane broker hands each due queue row to one taker, people's first, in one statement."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.signing import SignedPackage

from offload import jobs
from offload.jobs.lanes import broker_for, lane_queue
from offload.models import JobPriority

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
