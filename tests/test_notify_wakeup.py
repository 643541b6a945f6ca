"""The notify lane wakes when a delivery's task commits, not at its next poll (offload/jobs/lanes.py)."""

import pytest
from django.db import connection, transaction

from offload.alerts import endpoints
from offload.alerts.queueing import LANE
from tests.support.wakeup import LONG_PAUSE, listening

# Commits are what is under test: each test's writes really commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True


def test_a_committed_delivery_wakes_the_notify_lane_and_its_task_is_taken(alice):
    endpoint, _ = endpoints.create_endpoint(
        alice, {"agent": "webhook", "name": "hook", "url": "http://127.0.0.1:9/", "events": ["job.failed"]}
    )
    lane = listening(LANE)
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
    lane = listening(LANE, pause=1.0)
    with pytest.raises(RuntimeError), transaction.atomic():
        endpoints.send_test(endpoint)
        raise RuntimeError("rolled back")
    lane.join(LONG_PAUSE)
    assert lane.woken is False and lane.taken == []
    connection.close()
