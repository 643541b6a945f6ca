"""The notify lane's side of django-q2: the task that makes one delivery attempt, and its wake-up.

With the ORM broker an idle lane polls its queue every OFFLOAD_NOTIFY_Q_POLL seconds, which
was most of the time from a job's finish to its webhook. So a delivery's task also sends a
PostgreSQL NOTIFY in the transaction that writes it: PostgreSQL delivers it at the commit (never
for a rollback), and the notify lane's broker, LISTENing between polls, takes the task at once.
The poll stays as the fallback (a missed notification costs one poll, no more).
"""

import select
from datetime import datetime

from django.conf import settings
from django.db import connections, transaction
from django_q.conf import Conf
from django_q.tasks import async_task
from psycopg import sql

from offload.jobs import LaneBroker, LaneORMBroker, broker_for, lane_queue

# Stored in queue rows: renaming it strands queued attempts.
ATTEMPT = "offload.alerts.delivery.attempt"
LANE = "notify"


def wake_channel(queue: str) -> str:
    """The PostgreSQL channel a lane's queue is woken on."""
    return f"offload_wake:{queue}"


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
        if not_before is None:
            _wake(queue)
        return
    if not_before is None:
        transaction.on_commit(
            lambda: async_task(ATTEMPT, delivery_id, timeout=timeout, broker=broker_for(queue)), robust=True
        )


def _wake(queue: str) -> None:
    """NOTIFY the lane, delivered when the caller's transaction commits (PostgreSQL folds repeats)."""
    connection = connections[settings.Q_CLUSTER["orm"]]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [wake_channel(queue)])


class NotifyLaneBroker(LaneORMBroker):
    """The notify lane's ORM broker: between polls of an empty queue it LISTENs for a new task."""

    _listening_on = None

    def wait_for_work(self, seconds: float) -> bool:
        connection = connections[Conf.ORM]
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            return super().wait_for_work(seconds)
        connection.ensure_connection()
        raw = connection.connection
        # A new database connection (Django closes old ones) listens afresh.
        if self._listening_on is not raw:
            raw.execute(sql.SQL("LISTEN {}").format(sql.Identifier(wake_channel(self.list_key))))
            self._listening_on = raw
        # Wait for the socket rather than in psycopg's notifies(): the spine's notify handler on every
        # connection (offload/jobs/events.py) would make that unreliable. The next poll's query
        # reads the notification (the handlers pass over it).
        readable, _, _ = select.select([raw.fileno()], [], [], seconds)
        return bool(readable)
