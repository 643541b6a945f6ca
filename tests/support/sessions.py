"""Ending a Django connection's PostgreSQL session from outside, as a database restart would."""

import psycopg


def end_session(conn) -> None:
    """The database terminates this connection's backend; Django does not know until it next uses it."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    params = conn.get_connection_params()
    dsn = {key: params[key] for key in ("dbname", "user", "password", "host", "port") if params.get(key)}
    with psycopg.connect(**dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
