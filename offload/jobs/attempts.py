"""A job's attempts as history: each claim opens one, whatever ends the attempt closes it.

Every function here comes in the two forms the transitions take (offload/jobs/transitions.py):
an ORM write inside the caller's transaction, and a SQL fragment that the one-statement form
(offload/jobs/statements.py) runs as a CTE over the changed row (alias `changed`). Both write
the same row; tests/test_job_attempts.py holds them together.
"""

import os
import socket
from datetime import datetime

from django.db.models import Max

from offload.models import AttemptOutcome, Job, JobAttempt

ATTEMPT_TABLE = JobAttempt._meta.db_table


def worker_identity() -> tuple[str, int]:
    """(host, pid) of this worker process: what an attempt records and a lost attempt is named by."""
    return socket.gethostname(), os.getpid()


# What a lost attempt's row says when a redelivered task took the job over.
LOST_ERROR = "Its worker stopped beating; another attempt took over."


def lost_reason(job: Job, host: str, pid: int | None) -> str:
    """The lost attempt's line in the timeline and its Error, e.g. "Attempt 1 lost on web-1/4242, re-queued."."""
    where = f" on {host}/{pid}" if host else ""
    return f"Attempt {job.attempts} lost{where} (its worker stopped beating), re-queued."


def open_attempt(job: Job, now: datetime) -> None:
    """Record the claimed attempt as running on this worker (inside the claim's transaction)."""
    close_open(job.pk, AttemptOutcome.LOST, now, error=LOST_ERROR)
    host, pid = worker_identity()
    last = JobAttempt.objects.filter(job_id=job.pk).aggregate(last=Max("number"))["last"] or 0
    JobAttempt.objects.create(job_id=job.pk, number=last + 1, started_at=now, host=host, pid=pid)


def close_open(job_id: int, outcome: str, now: datetime, *, error: str | None = None) -> int:
    """End the job's open attempt with this outcome; the job's log tail goes with it. Answers how many closed."""
    log_tail = Job.objects.filter(pk=job_id).values_list("log_tail", flat=True).first() or ""
    return JobAttempt.objects.filter(job_id=job_id, finished_at__isnull=True).update(
        finished_at=now, outcome=outcome, error=error or "", log_tail=log_tail
    )


def open_attempt_sql(now: datetime, when: str = "TRUE") -> tuple[str, list]:
    """open_attempt() as CTEs over `changed` (alias c): any open attempt closed as lost, this one opened when `when`."""
    host, pid = worker_identity()
    lost, lost_params = close_open_sql(AttemptOutcome.LOST, now, error=LOST_ERROR)
    # Both CTEs read the same snapshot: the close never sees the row the insert adds.
    opened = f"""
opened AS (
    INSERT INTO {ATTEMPT_TABLE} (job_id, number, started_at, finished_at, host, pid, outcome, error, log_tail)
    SELECT c.id, COALESCE((SELECT max(a.number) FROM {ATTEMPT_TABLE} a WHERE a.job_id = c.id), 0) + 1,
           %s, NULL, %s, %s, %s, '', ''
    FROM changed c WHERE {when}
)"""  # noqa: S608 (identifiers from the models; every value is a parameter)
    return f"{lost},{opened}", [*lost_params, now, host, pid, AttemptOutcome.RUNNING]


def close_open_sql(outcome: str, now: datetime, *, error: str | None = None) -> tuple[str, list]:
    """close_open() as a CTE over `changed`: the log tail is the changed row's."""
    name = "closed_" + outcome
    sql = f"""
{name} AS (
    UPDATE {ATTEMPT_TABLE} AS a SET finished_at = %s, outcome = %s, error = %s, log_tail = c.log_tail
    FROM changed c WHERE a.job_id = c.id AND a.finished_at IS NULL
)"""  # noqa: S608 (identifiers from the models; every value is a parameter)
    return sql, [now, outcome, error or ""]
