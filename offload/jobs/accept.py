"""The accept path: a person's request for a job on a target, as one statement.

`enqueue()` (offload/jobs/transitions.py) reads, inserts and writes the queue row in several
round trips, each built by the ORM. A request from the API does the same work here in one
statement that commits on its own (PostgreSQL): the access check on the target, the
Idempotency-Key replay, the identical active job, the job row, its first event and the
django-q2 queue row. The SQL is compiled once per target type and audience, and the answer
is built from what the statement returns.

What it keeps from `enqueue()`:
- the unique indexes decide races: the INSERT is `ON CONFLICT DO NOTHING`, and a request
  that loses one (the row it collided with committed after the statement's snapshot) gets
  no row back and takes the general path, which reads what won;
- the event is inserted with seq NULL and numbered as the statement commits, by the same
  deferred trigger (offload/jobs/events.py), so the event order keeps its guarantee;
- the queue row is the same signed django-q2 task, in the same lane queue.

The task names its job, so the job's id must be known before the statement: each process
keeps spare ids from the job's sequence, and every statement that uses one takes the next
in the same round trip. Only a process's first request asks for one on its own.

SQLite (the embedded run) takes the general path.
"""

import json
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django_q.models import OrmQ

from offload.jobs import prepared, waiting
from offload.jobs.errors import IdempotencyKeyReused
from offload.jobs.events import announce_at_commit, wanted_in_transaction_sql
from offload.jobs.identity import new_job
from offload.jobs.lanes import WAKE_SQL, queue_of, wake_channel
from offload.jobs.payload import job_payload
from offload.jobs.queue import task_package
from offload.models import ACTIVE_STATUSES, Job, JobEvent, JobPriority, JobStatus, QueueControl

# (user, target_type) → the queryset of targets the user may see.
TargetsFor = Callable[[Any, str], QuerySet]

# Sentinels that mark where a compiled access query takes the user's id and the target's.
_USER_SENTINEL = -7_700_000_000_001
_TARGET_SENTINEL = -7_700_000_000_002


@dataclass(frozen=True)
class Accepted:
    """What the statement answered: the job, and whether this request created it."""

    job: Job
    created: bool
    # An identical active job answered (not a replayed Idempotency-Key).
    twin: bool = False


class _Statement:
    """The SQL of one target type and audience, and the order its parameters go in."""

    def __init__(self, sql: str, order: list[str | tuple[Any]]) -> None:
        self.sql = sql
        # A name takes the request's value; a 1-tuple is a constant the compiled query holds.
        self.order = order

    def params(self, values: dict[str, Any]) -> list[Any]:
        return [values[slot] if isinstance(slot, str) else slot[0] for slot in self.order]


_statements: dict[tuple[str, bool], _Statement] = {}
_spare_ids: deque[int] = deque()
_spare_lock = threading.Lock()
_spare_pid: int | None = None


def supported() -> bool:
    """Whether a request takes the one-statement path: PostgreSQL with the ORM broker (the queue row is
    written by the statement), and no in-transaction receiver of "queued"."""
    return (
        connection.vendor == "postgresql"
        and bool(settings.Q_CLUSTER.get("orm"))
        and wanted_in_transaction_sql(None, str(JobStatus.QUEUED)) == "FALSE"
    )


def _access_sql(target_queryset) -> tuple[str, list[str | tuple[Any]]]:
    """The target's access rule (offload.access) as SQL with named parameter slots."""
    sql, params = target_queryset.filter(pk=_TARGET_SENTINEL).values("pk").query.sql_with_params()
    order: list[str | tuple[Any]] = []
    for value in params:
        if value == _USER_SENTINEL:
            order.append("user")
        elif value == _TARGET_SENTINEL:
            order.append("target_id")
        else:
            order.append((value,))  # a constant of the rule itself (EXISTS … LIMIT 1)
    return sql, order


def _compile(target_type: str, staff: bool, visible_to: TargetsFor) -> _Statement:
    user_stub = type("Audience", (), {"pk": _USER_SENTINEL, "is_staff": staff})()
    target_sql, order = _access_sql(visible_to(user_stub, target_type).order_by())

    quote = connection.ops.quote_name

    def typed(model, name: str) -> str:
        # Typed parameters: a prepared statement fixes its parameters' types, and a NULL
        # selected into an INSERT must already have its column's type.
        return f"CAST(%s AS {model._meta.get_field(name).db_type(connection)})"

    job_table = quote(Job._meta.db_table)
    # The row travels as one JSON parameter (its columns by name): few parameters keep the
    # statement within what psycopg caches the parsing of.
    column_names = [quote(f.column) for f in Job._meta.concrete_fields]
    column_list = ", ".join(column_names)
    active = ", ".join("%s::text" for _ in ACTIVE_STATUSES)
    event_fields = ["job", "user", "event", "payload", "created_at"]
    event_columns = ", ".join(quote(JobEvent._meta.get_field(name).column) for name in event_fields)
    event_values = ", ".join(typed(JobEvent, name) for name in event_fields[1:])
    sequence = f"pg_get_serial_sequence('{Job._meta.db_table}', '{Job._meta.pk.column}')"

    sql = f"""
WITH target AS ({target_sql}),
replay AS (
    SELECT j.* FROM {job_table} j
    WHERE %s::text <> '' AND j.requested_by_id = %s::bigint AND j.idempotency_key = %s::text
      AND EXISTS (SELECT 1 FROM target)
),
twin AS (
    SELECT j.* FROM {job_table} j
    WHERE j.kind = %s::text AND j.target_type = %s::text AND j.target_id = %s::bigint AND j.params_hash = %s::text
      AND j.status IN ({active})
      AND EXISTS (SELECT 1 FROM target) AND NOT EXISTS (SELECT 1 FROM replay)
),
job AS (
    INSERT INTO {job_table} ({column_list})
    SELECT {", ".join(f"(r).{c}" for c in column_names)}
    FROM target, (SELECT jsonb_populate_record(NULL::{job_table}, %s::jsonb) AS r) row
    WHERE NOT EXISTS (SELECT 1 FROM replay) AND NOT EXISTS (SELECT 1 FROM twin)
    ON CONFLICT DO NOTHING
    RETURNING id
),
event AS (
    INSERT INTO {quote(JobEvent._meta.db_table)} ({event_columns})
    SELECT job.id, {event_values} FROM job
    RETURNING id
),
task AS (
    INSERT INTO {quote(OrmQ._meta.db_table)} (key, payload, lock)
    SELECT {typed(OrmQ, "key")}, {typed(OrmQ, "payload")}, {typed(OrmQ, "lock")} FROM job
    RETURNING id, {WAKE_SQL}
),
hold AS (
    -- The kind's hold, for the answer's waiting_reason (offload/jobs/waiting.py) without a second round trip.
    SELECT c.paused, c.concurrency, CASE WHEN c.concurrency IS NULL THEN 0 ELSE (
        SELECT count(*) FROM {job_table} r WHERE r.kind = c.kind AND r.status = %s::text) END AS running
    FROM {quote(QueueControl._meta.db_table)} c WHERE c.kind = %s::text
)
SELECT 'created', event.id, NULL, CASE WHEN %s::boolean THEN nextval({sequence}) END,
       (SELECT row_to_json(hold)::text FROM hold) FROM event, task
UNION ALL SELECT 'replay', NULL, row_to_json(replay)::text, NULL, (SELECT row_to_json(hold)::text FROM hold) FROM replay
UNION ALL SELECT 'twin', NULL, row_to_json(twin)::text, NULL, (SELECT row_to_json(hold)::text FROM hold) FROM twin
"""  # noqa: S608 (identifiers come from the models; every value is a parameter)
    order = [
        *order,
        "key",
        "user",
        "key",
        "kind",
        "target_type",
        "target_id",
        "params_hash",
        *(f"active:{status}" for status in ACTIVE_STATUSES),
        "job",
        "user",
        "event",
        "event_payload",
        "now",
        "queue",
        "task",
        "now",
        "wake",
        "running",
        "kind",
        "want_spare",
    ]
    return _Statement(sql, order)


def _statement(target_type: str, staff: bool, visible_to: TargetsFor) -> _Statement:
    found = _statements.get((target_type, staff))
    if found is None:
        found = _statements[(target_type, staff)] = _compile(target_type, staff, visible_to)
    return found


def _take_id(cursor) -> int:
    """A job id from this process's spares, or a fresh one from the sequence (a round trip)."""
    global _spare_pid
    with _spare_lock:
        if _spare_pid != os.getpid():
            # A forked process must not hand out the ids its parent holds.
            _spare_ids.clear()
            _spare_pid = os.getpid()
        if _spare_ids:
            return _spare_ids.popleft()
    cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s))", [Job._meta.db_table, Job._meta.pk.column])
    return cursor.fetchone()[0]


def _give_back(job_id: int) -> None:
    with _spare_lock:
        if _spare_pid == os.getpid():
            _spare_ids.append(job_id)


def _row_json(job: Job) -> str:
    """The job's row as JSON by column, as jsonb_populate_record reads it (times with their microseconds)."""
    row = {}
    for field in Job._meta.concrete_fields:
        value = getattr(job, field.attname)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, str):
            value = str(value)  # a TextChoices member as its value
        row[field.column] = value
    return json.dumps(row)


def accept(
    user,
    kind: str,
    target_type: str,
    target_id: int,
    params: dict[str, Any],
    params_hash: str,
    key: str,
    *,
    visible_to: TargetsFor,
) -> Accepted | None:
    """A person's job, accepted in one statement: the new job (created), the replayed or active one, or None.

    visible_to(user, target_type): the targets the user may see, as a queryset (offload.access
    holds the rule; it is compiled into the statement once per target type and audience).

    None: the target is not the user's to see, or the statement lost a race to a row it could
    not see; the caller takes the general path, which tells the two apart.
    """
    job = new_job(kind, (target_type, target_id), params, params_hash, user, key, [], JobPriority.PERSON)
    now = job.created_at
    statement = _statement(target_type, bool(user.is_staff), visible_to)

    def run() -> tuple[list[tuple], dict[str, Any]]:
        with prepared.cursor() as cursor:
            job.pk = _take_id(cursor)
            for field in Job._meta.concrete_fields:
                field.pre_save(job, add=True)
            payload = job_payload(job)
            queue = queue_of(job)
            values: dict[str, Any] = {
                "user": user.pk,
                "target_id": target_id,
                "key": key,
                "kind": kind,
                "target_type": target_type,
                "params_hash": params_hash,
                "event": str(JobStatus.QUEUED),
                "event_payload": JobEvent._meta.get_field("payload").get_db_prep_save(payload, connection),
                "now": now,
                "queue": queue,
                "wake": wake_channel(queue),
                "task": task_package(job.task_id, job.pk, job),
                "want_spare": True,
                "running": str(JobStatus.RUNNING),
            }
            for status in ACTIVE_STATUSES:
                values[f"active:{status}"] = str(status)
            values["job"] = _row_json(job)
            cursor.execute(statement.sql, statement.params(values))
            return cursor.fetchall(), payload

    rows, payload = prepared.on_live_connection(run)
    if not rows:
        _give_back(job.pk)
        return None
    outcome, event_id, row, spare, hold = rows[0]
    holds = waiting.Holds.known(kind, json.loads(hold) if hold else None)
    if outcome != "created":
        _give_back(job.pk)
        if outcome == "twin":
            return Accepted(_with_holds(prepared.job_from_json(row), holds), created=False, twin=True)
        replayed = _replayed(job, row)
        if replayed is not None:
            _with_holds(replayed.job, holds)
        return replayed
    if spare is not None:
        _give_back(spare)
    job._state.adding = False
    job._state.db = connection.alias
    record = JobEvent(
        pk=event_id, seq=None, job=job, user_id=user.pk, event=JobStatus.QUEUED, payload=payload, created_at=now
    )
    record._state.adding = False
    # Committed already, unless a caller's transaction holds the statement (then at its commit).
    announce_at_commit(record, nobody_joined=True)
    return Accepted(_with_holds(job, holds), created=True)


def _with_holds(job: Job, holds: "waiting.Holds") -> Job:
    """The job, carrying its kind's hold as the statement read it: its answer's waiting_reason asks nothing more."""
    job.holds = holds
    return job


def _replayed(asked: Job, row: str) -> Accepted | None:
    """The job an earlier request with this Idempotency-Key made; None when the key has expired."""
    earlier = prepared.job_from_json(row)
    if earlier.created_at < timezone.now() - timedelta(seconds=settings.OFFLOAD_IDEMPOTENCY_TTL_SECONDS):
        return None  # the general path frees the key
    request = (asked.kind, asked.target_type, asked.target_id, asked.params_hash)
    if (earlier.kind, earlier.target_type, earlier.target_id, earlier.params_hash) != request:
        raise IdempotencyKeyReused("This Idempotency-Key was already used for a different request.")
    return Accepted(earlier, created=False)


def answers_as_is(accepted: Accepted, user, key: str) -> bool:
    """Whether the answer stands, or the general path must let the asker join, promote the job or give it the key."""
    if not accepted.twin:
        return True
    twin = accepted.job
    if twin.requested_by_id != user.pk and not user.is_staff:
        return False  # the asker joins it
    if key and not twin.idempotency_key and twin.requested_by_id == user.pk:
        return False  # it takes the key
    return twin.priority >= JobPriority.PERSON
