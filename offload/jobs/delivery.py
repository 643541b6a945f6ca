"""The task a worker is running, so that a job's finish also acknowledges it.

django-q2 acknowledges a finished task in the cluster's monitor process: once the worker
hands back the result, the monitor deletes the task's queue row (with the ORM broker, a
transaction of its own: BEGIN, DELETE, COMMIT). A job's finish is already a write of its own,
so it deletes the row in the same statement (offload/jobs/statements.py) or the same
transaction (offload/jobs/transitions.py) and clears the task's `ack_id`: the monitor, which
acknowledges only a task that still carries one, then has nothing left to do.

Only the delivery that finishes the job deletes its own row. A second delivery of the same
job finds nothing to claim, and the monitor acknowledges it as before; so does every outcome
that is not a finish (a retry, a deferral, a hold, a lost attempt). A finish that rolls back
deletes nothing and clears nothing.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from offload.jobs.lanes import DELETE_TASK_SQL
from offload.jobs.queue import EXECUTE

_local = threading.local()


def on_task_starting(sender, func=None, task: dict[str, Any] | None = None, **kwargs) -> None:
    """django-q2's pre_execute, in the worker: the task about to run, which its result will carry to the monitor."""
    _local.next_task = task if task is not None and task.get("func") == EXECUTE else None


@contextmanager
def running() -> Iterator[None]:
    """While the job's task runs: the delivery announced by pre_execute is the current one, then none is."""
    _local.task, _local.next_task = getattr(_local, "next_task", None), None
    try:
        yield
    finally:
        _local.task = None


def queue_row() -> int | None:
    """The queue row of the task this worker is running (ORM broker), or None."""
    task = getattr(_local, "task", None)
    if task is None or not settings.Q_CLUSTER.get("orm"):
        return None
    ack_id = task.get("ack_id")
    return ack_id if isinstance(ack_id, int) and ack_id else None


def acknowledge_sql(alias: str = "changed") -> tuple[str, list[Any]]:
    """The acknowledge as a CTE over the changed row (`alias`): the task's queue row deleted when the change took."""
    row = queue_row()
    if row is None:
        return "", []
    return f"acked AS ({DELETE_TASK_SQL} AND EXISTS (SELECT 1 FROM {alias}))", [row]  # noqa: S608 (no value in it)


def acknowledge_in_transaction() -> None:
    """The acknowledge inside the caller's transaction: the row goes with its commit, or stays with its rollback."""
    row = queue_row()
    if row is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(DELETE_TASK_SQL, [row])
    task = _local.task
    transaction.on_commit(lambda: _acknowledged(task))


def acknowledged() -> None:
    """The finish that deleted the task's row has committed: the monitor must not acknowledge it again."""
    _acknowledged(getattr(_local, "task", None))


def _acknowledged(task: dict[str, Any] | None) -> None:
    if task is not None:
        task["ack_id"] = None
