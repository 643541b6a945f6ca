"""A job lane wakes when a job's task commits, not at its next poll (offload/jobs/lanes.py)."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from offload import jobs
from offload.jobs.lanes import broker_for, lane_queue
from offload.jobs.queue import push
from offload.models import Library, MediaItem
from tests.support.wakeup import LONG_PAUSE, listening

# Commits are what is under test: each test's writes really commit.
pytestmark = pytest.mark.django_db(transaction=True)

# Long enough for a wake-up that is coming to arrive; a pause that runs out was not woken.
SHORT_PAUSE = 1.0


@pytest.fixture(autouse=True)
def _own_connection_closed():
    yield
    connection.close()


def test_a_probe_accepted_through_the_api_wakes_its_lane_and_its_task_is_taken(alice, alice_api, library_root):
    library = Library.objects.create(name="Alice's", path=str(library_root / "alice"), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4")
    lane = listening("default")
    response = alice_api.post(f"/api/v1/media/{item.pk}/probe/")
    assert response.status_code == 202
    lane.join(LONG_PAUSE * 2)
    assert lane.woken is True
    assert len(lane.taken) == 1


def test_a_job_queued_by_a_scan_or_a_pipeline_wakes_its_lane(alice):
    lane = listening("default")
    with transaction.atomic():
        jobs.enqueue("system.noop", user=alice)
    lane.join(LONG_PAUSE * 2)
    assert lane.woken is True
    assert len(lane.taken) == 1


def test_a_rolled_back_job_wakes_nobody(alice):
    lane = listening("default", pause=SHORT_PAUSE)
    with pytest.raises(RuntimeError), transaction.atomic():
        jobs.enqueue("system.noop", user=alice)
        raise RuntimeError("rolled back")
    lane.join(LONG_PAUSE)
    assert lane.woken is False and lane.taken == []


def test_a_job_due_later_wakes_nobody(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    lane = listening("default", pause=SHORT_PAUSE)
    # Its task taken first (the queue is empty again), then a retry's task written for later.
    assert broker_for(lane_queue("default")).dequeue()
    push(job, not_before=timezone.now() + timedelta(hours=1))
    lane.join(LONG_PAUSE)
    assert lane.woken is False and lane.taken == []
