"""A job's change and its event as one statement: the worker's claim, progress and finish.

A transition written with the ORM is a transaction of four round trips: BEGIN, the
conditional `UPDATE … RETURNING`, the event INSERT and COMMIT. Here the UPDATE and the event
INSERT are one statement that commits on its own (PostgreSQL): the event's JSON is built by
the database from the updated row (`payload.payload_sql`, held to the Python definition by
a test), and its seq is taken at commit by the same deferred trigger as any other event
(offload/jobs/events.py). The caller hears back the row and the event's id, and announces
the event as record_event's callers do.

Anything the statement cannot decide alone (a held kind, a pipeline's next stages, the last
attempt's give-up) matches no row here and goes the transactional way.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from offload.jobs import attempts, delivery, prepared
from offload.jobs.events import announce_at_commit, wanted_in_transaction_sql
from offload.jobs.payload import job_payload, payload_sql
from offload.models import Job, JobEvent, JobStatus

JOB_TABLE = Job._meta.db_table
EVENT_TABLE = JobEvent._meta.db_table


@dataclass(frozen=True)
class Expression:
    """A SET value computed by the database from the row (alias j), e.g. "j.attempts + 1"."""

    sql: str


def supported() -> bool:
    """Whether transitions may take the one-statement form (PostgreSQL, outside a caller's transaction)."""
    # Inside a transaction the caller's other writes must commit with the event: the
    # transactional form keeps that (and SQLite numbers events at INSERT).
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def _set_clause(changes: dict[str, Any]) -> tuple[str, list[Any]]:
    parts, params = [], []
    for name, value in changes.items():
        field = Job._meta.get_field(name)
        if isinstance(value, Expression):
            parts.append(f"{connection.ops.quote_name(field.column)} = {value.sql}")
            continue
        parts.append(f"{connection.ops.quote_name(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return ", ".join(parts), params


def change_with_event(
    job_id: int,
    *,
    where: str,
    where_params: list[Any],
    changes: dict[str, Any],
    event: str,
    event_when: str = "TRUE",
    also: tuple[str, list[Any]] | None = None,
) -> Job | None:
    """UPDATE the job when `where` holds (alias j) and append `event` when `event_when` does; the row, or None.

    `also`: further CTEs (SQL, params) over `changed`, the updated row, e.g. the attempt's
    history (offload/jobs/attempts.py). The event is announced once the statement has
    committed; the row comes back as it now is.
    """
    also_sql, also_params = also or ("", [])
    set_clause, set_params = _set_clause(changes)
    sql = f"""
WITH changed AS (
    UPDATE {JOB_TABLE} AS j SET {set_clause}
    WHERE j.id = %s AND ({where})
    RETURNING j.*
),
event AS (
    INSERT INTO {EVENT_TABLE} (job_id, user_id, event, payload, created_at)
    SELECT j.id, j.requested_by_id, %s, {payload_sql("j")}, now() FROM changed j WHERE {event_when}
    RETURNING id, created_at
){"," + also_sql if also_sql else ""}
SELECT row_to_json(changed)::text, event.id, event.created_at
FROM changed LEFT JOIN event ON TRUE
"""  # noqa: S608 (identifiers from the models; every value is a parameter)
    with prepared.cursor() as cursor:
        cursor.execute(sql, [*set_params, job_id, *where_params, event, *also_params])
        row = cursor.fetchone()
    if row is None:
        return None
    changed, event_id, event_at = row
    job = prepared.job_from_json(changed)
    if event_id is not None:
        record = JobEvent(
            pk=event_id,
            seq=None,
            job=job,
            user_id=job.requested_by_id,
            event=event,
            payload=job_payload(job),
            created_at=event_at,
        )
        record._state.adding = False
        announce_at_commit(record, nobody_joined=not job.has_members)
    return job


def start_attempt(job_id: int, unless: str, changes: dict[str, Any], stale: datetime) -> Job | None:
    """The claim's change (queued → running, or a running job whose heartbeat is older than `stale`),
    except for a queued job where the SQL condition `unless` (alias j) holds; the row, or None.

    The attempt past the last one announces no start (its caller fails it at once) and opens
    no attempt row.
    """
    return change_with_event(
        job_id,
        where=f"(j.status = %s AND NOT ({unless})) OR (j.status = %s AND j.heartbeat_at < %s)",
        where_params=[JobStatus.QUEUED, JobStatus.RUNNING, stale],
        changes={**changes, "attempts": Expression("j.attempts + 1")},
        event="started",
        event_when="j.attempts <= j.max_attempts",
        also=attempts.open_attempt_sql(changes["started_at"], when="c.attempts <= c.max_attempts"),
    )


def finish(job: Job, status: str, changes: dict[str, Any], now: datetime, error: str | None) -> Job | None:
    """The attempt's final status, unless a success has next stages to queue with it or a receiver of
    job_event_recorded would write for it (both the transactional way): the row, or None.

    The task being run is acknowledged in the same statement (offload/jobs/delivery.py).
    """
    also = [attempts.close_open_sql(status, now, error=error), delivery.acknowledge_sql()]
    done = change_with_event(
        job.pk,
        where=(
            """j.status = %s AND j.attempts = %s AND (%s <> %s OR j."then" = '[]'::jsonb)"""
            f" AND NOT ({wanted_in_transaction_sql(job, status)})"
        ),
        where_params=[JobStatus.RUNNING, job.attempts, status, JobStatus.SUCCEEDED],
        changes=changes,
        event=status,
        also=(",".join(sql for sql, _ in also if sql), [param for _, params in also for param in params]),
    )
    if done is not None:
        delivery.acknowledged()
    return done


def progress(job: Job, changes: dict[str, Any]) -> Job | None:
    """The attempt's progress and its event: the row, or None when the attempt lost the job."""
    return change_with_event(
        job.pk,
        where="j.status = %s AND j.attempts = %s",
        where_params=[JobStatus.RUNNING, job.attempts],
        changes=changes,
        event="progress",
    )
