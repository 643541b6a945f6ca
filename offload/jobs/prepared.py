"""Statements PostgreSQL parses and plans once per connection: the accept and the worker's transitions.

Django's cursors bind parameters on the client, so every statement reaches PostgreSQL as new
text to parse and plan. For the spine's few fixed statements (a handful of CTEs each) that
planning cost more than running them. These cursors bind on the server and prepare each
statement on its first use; a value's type is fixed with the statement, so the SQL casts
what PostgreSQL cannot infer (a NULL or a string selected into an INSERT).

Rows come back as one JSON value (`row_to_json`): its shape never changes with the table's,
which a prepared statement's result must not.

The spine's busiest connections (the accept, a worker's claim, a lane's polls and
acknowledges) run their statements through `on_live_connection`: health-checked at most once
a second rather than before every request, task or poll.
"""

import json
import threading
from collections.abc import Callable
from time import monotonic
from typing import TypeVar

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from offload.models import Job

T = TypeVar("T")
# How often a connection the spine keeps using is health-checked (Django's SELECT 1).
CHECK_INTERVAL = 1.0
_local = threading.local()

_NEVER_BY_COUNT = 2**31 - 1


class _PreparedCursor(psycopg.Cursor):
    """Server-side binding, every statement prepared."""

    def execute(self, query, params=None, **kwargs):
        kwargs.setdefault("prepare", True)
        return super().execute(query, params, **kwargs)


def cursor():
    """Django's cursor wrapper (query capture, execute wrappers) around a preparing cursor.

    OFFLOAD_DB_PREPARED_STATEMENTS=0 (a pooler that cannot keep prepared statements) gives
    Django's own cursor: the same SQL, bound on the client.
    """
    if not settings.OFFLOAD_DB_PREPARED_STATEMENTS:
        return connection.cursor()
    # As connection.cursor() does, around a cursor of our own class (_prepare_cursor is
    # Django's wrapping step; Django's own cursors bind on the client and never prepare).
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off, and with it `prepare=True`. Django's own cursors
        # bind on the client and never prepare whatever the threshold; this one prepares on its
        # first use, so the count never comes into play.
        raw.prepare_threshold = _NEVER_BY_COUNT
    return connection._prepare_cursor(_PreparedCursor(raw))


def on_live_connection(statements: Callable[[], T]) -> T:
    """statements() on this thread's connection, health-checked at most once a CHECK_INTERVAL.

    Django health-checks a connection before its first query after each request or task (a
    `SELECT 1`, for django-q2's worker before every task): on the accept path and the
    worker's claim that was a second round trip. A connection that died since its last check
    (a database restart) fails at once, before any statement reached a server, and
    statements() runs once more on a new one.
    """
    if not _spare_health_check():
        return statements()
    try:
        return statements()
    except (InterfaceError, OperationalError):
        connection.close()
        return statements()


def _spare_health_check() -> bool:
    """Call off the health check Django asked for when one ran within CHECK_INTERVAL; whether it was."""
    now = monotonic()
    if (
        connection.connection is None
        or connection.in_atomic_block
        or connection.health_check_done
        or now - getattr(_local, "checked_at", -CHECK_INTERVAL) >= CHECK_INTERVAL
    ):
        _local.checked_at = now
        return False
    connection.health_check_done = True
    return True


def job_from_json(text: str) -> Job:
    """The Job a statement returned as `row_to_json` of its row (columns by name)."""
    row = json.loads(text)
    values = [f.to_python(row[f.column]) if row[f.column] is not None else None for f in Job._meta.concrete_fields]
    return Job.from_db(connection.alias, [f.attname for f in Job._meta.concrete_fields], values)
