"""The notify lane's side of django-q2: the task that makes one delivery attempt.

With the ORM broker, the attempt's queue row wakes the notify lane when it commits, as every
lane's does (offload/jobs/lanes.py): from a job's finish to its webhook is not one poll longer.
"""

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

from offload.jobs import LaneBroker, broker_for, lane_queue

# Stored in queue rows: renaming it strands queued attempts.
ATTEMPT = "offload.alerts.delivery.attempt"
LANE = "notify"


def queue_attempt(delivery_id: int, not_before: datetime | None = None) -> None:
    """Queue an attempt: in the caller's transaction (ORM broker), or after it commits (Redis).

    With Redis a task cannot be held back: an attempt due later is left to the minute sweep.
    """
    # The attempt itself is bounded by the notify timeout; the margin covers the bookkeeping.
    timeout = int(settings.OFFLOAD_NOTIFY_TIMEOUT) + 20
    queue = lane_queue(LANE)
    if settings.Q_CLUSTER.get("orm"):
        broker = LaneBroker(queue, not_before) if not_before is not None else broker_for(queue)
        async_task(ATTEMPT, delivery_id, timeout=timeout, broker=broker)
        return
    if not_before is None:
        transaction.on_commit(
            lambda: async_task(ATTEMPT, delivery_id, timeout=timeout, broker=broker_for(queue)), robust=True
        )
