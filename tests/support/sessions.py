"""A Django connection's PostgreSQL session: ended from outside, as a database restart would, and
the clock its health checks are spaced by (offload/jobs/prepared.py)."""

import threading

import psycopg
from django.db import connection

from offload.jobs import prepared


def on_check_clock(monkeypatch, clock: list[float]) -> None:
    """The spine's health checks read this clock, and this thread has made none on it yet."""
    monkeypatch.setattr(prepared, "monotonic", lambda: clock[0])
    monkeypatch.setattr(prepared, "_local", threading.local())


def health_checks(monkeypatch, clock: list[float]) -> list[float]:
    """The times on `clock` at which this thread's connection is health-checked from now on."""
    checks: list[float] = []
    usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(clock[0]) or usable())
    return checks


def end_session(conn) -> None:
    """The database terminates this connection's backend; Django does not know until it next uses it."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    params = conn.get_connection_params()
    dsn = {key: params[key] for key in ("dbname", "user", "password", "host", "port") if params.get(key)}
    with psycopg.connect(**dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
