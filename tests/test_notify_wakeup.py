"""The notify lane wakes when a delivery's task commits, not at its next poll (offload/alerts/queueing.py)."""

import threading

import pytest
from django.db import connection, transaction

from offload.alerts import endpoints
from offload.alerts.queueing import LANE, NotifyLaneBroker
from offload.jobs import lane_queue

# Commits are what is under test: each test's writes really commit.
pytestmark = pytest.mark.django_db(transaction=True)

# Far longer than any wake-up takes: a pause that runs this long was not woken.
LONG_PAUSE = 60.0


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True


class Lane(threading.Thread):
    """The notify lane's broker in a thread of its own (its own connection), pausing once after an empty poll."""

    def __init__(self, pause: float) -> None:
        super().__init__(daemon=True)
        self.pause = pause
        self.listening = threading.Event()
        self.woken: bool | None = None
        self.taken: list = []

    def run(self) -> None:
        from django.db import connection as own

        broker = NotifyLaneBroker(lane_queue(LANE))
        try:
            broker.wait_for_work(0)  # LISTEN, as the lane's first empty poll does
            self.listening.set()
            self.woken = broker.wait_for_work(self.pause)
            self.taken = broker.dequeue() or []
        finally:
            own.close()


def test_a_committed_delivery_wakes_the_notify_lane_and_its_task_is_taken(alice):
    endpoint, _ = endpoints.create_endpoint(
        alice, {"agent": "webhook", "name": "hook", "url": "http://127.0.0.1:9/", "events": ["job.failed"]}
    )
    lane = Lane(LONG_PAUSE)
    lane.start()
    assert lane.listening.wait(LONG_PAUSE)
    with transaction.atomic():
        endpoints.send_test(endpoint)
    lane.join(LONG_PAUSE * 2)
    assert lane.woken is True
    # The attempt's task, taken at once.
    assert len(lane.taken) == 1


def test_a_rolled_back_delivery_wakes_nobody(alice):
    endpoint, _ = endpoints.create_endpoint(
        alice, {"agent": "webhook", "name": "hook", "url": "http://127.0.0.1:9/", "events": ["job.failed"]}
    )
    lane = Lane(pause=1.0)
    lane.start()
    assert lane.listening.wait(LONG_PAUSE)
    with pytest.raises(RuntimeError), transaction.atomic():
        endpoints.send_test(endpoint)
        raise RuntimeError("rolled back")
    lane.join(LONG_PAUSE)
    assert lane.woken is False and lane.taken == []
    connection.close()
