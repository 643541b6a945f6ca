"""The job's JSON (docs/api.md, Jobs): one definition, for REST answers and the event log alike."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from offload.models import Job


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# Field name → how to read it off a Job. The API's JobSerializer takes its field list from here.
FIELDS: dict[str, Callable[[Job], Any]] = {
    "id": lambda job: job.pk,
    "kind": lambda job: job.kind,
    "status": lambda job: job.status,
    "progress": lambda job: job.progress,
    "target": lambda job: job.target,
    "params": lambda job: job.params,
    "attempts": lambda job: job.attempts,
    "error": lambda job: job.error,
    "result": lambda job: job.result,
    "requested_by": lambda job: job.requested_by_id,
    "created_at": lambda job: _iso(job.created_at),
    "started_at": lambda job: _iso(job.started_at),
    "finished_at": lambda job: _iso(job.finished_at),
    "url": lambda job: f"/api/v1/jobs/{job.pk}/",
}


def job_payload(job: Job) -> dict[str, Any]:
    """The job JSON of docs/api.md, the same in REST and on the websocket."""
    return {name: read(job) for name, read in FIELDS.items()}


def _iso_sql(column: str) -> str:
    # As datetime.isoformat() writes a UTC time: microseconds only when there are some, then "Z".
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" || CASE WHEN date_part('microseconds', {column})::bigint %% 1000000 = 0 THEN ''"
        f" ELSE to_char({utc}, '.US') END || 'Z' END"
    )


def payload_sql(alias: str) -> str:
    """The same JSON built by PostgreSQL from a job row (alias.*), for events written in one statement.

    Field for field what FIELDS reads in Python; tests/test_job_payload.py holds the two together.
    """
    columns = {
        "id": f"{alias}.id",
        "kind": f"{alias}.kind",
        "status": f"{alias}.status",
        "progress": f"{alias}.progress",
        "target": (
            f"CASE WHEN {alias}.target_type = '' THEN NULL"
            f" ELSE jsonb_build_object('type', {alias}.target_type, 'id', {alias}.target_id) END"
        ),
        "params": f"{alias}.params",
        "attempts": f"{alias}.attempts",
        "error": f"{alias}.error",
        "result": f"{alias}.result",
        "requested_by": f"{alias}.requested_by_id",
        "created_at": _iso_sql(f"{alias}.created_at"),
        "started_at": _iso_sql(f"{alias}.started_at"),
        "finished_at": _iso_sql(f"{alias}.finished_at"),
        "url": f"'/api/v1/jobs/' || {alias}.id || '/'",
    }
    if set(columns) != set(FIELDS):
        raise RuntimeError("payload_sql and FIELDS name different fields")
    return "jsonb_build_object(" + ", ".join(f"'{name}', {sql}" for name, sql in columns.items()) + ")"
