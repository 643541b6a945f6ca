"""The job spine: every change of a Job's status goes through a function here.

Each transition is one transaction that changes the row with a conditional UPDATE,
appends its JobEvent and, where work must run, writes the django-q2 queue row. So a
rollback leaves no trace, and a task delivered twice finds nothing to do the second time.
"""

import hashlib
import json
import logging
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q, sql
from django.db.models.constants import OnConflict
from django.utils import timezone
from redis.exceptions import RedisError

from offload.jobs import attempts, fingerprints, statements
from offload.jobs.errors import IdempotencyKeyReused, JobConflict
from offload.jobs.events import record_event, wanted_in_transaction_sql
from offload.jobs.kinds import get_kind
from offload.jobs.queue import PARKED_TASK, new_task_id, push
from offload.lib import outputs
from offload.lib.redis_state import key as redis_key
from offload.lib.redis_state import state_redis
from offload.models import ACTIVE_STATUSES, AttemptOutcome, Job, JobAttempt, JobPriority, JobStatus

log = logging.getLogger(__name__)


# Keys up to this length are stored as given; longer ones as their digest, so that two long
# keys differ whenever their texts do (the column holds 255 characters).
STORED_KEY_LENGTH = 200


def stored_idempotency_key(key: str) -> str:
    """The Idempotency-Key as the job row stores it: whole, or its SHA-256 when long."""
    if len(key) <= STORED_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def params_hash(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def target_of(obj: models.Model | tuple[str, int] | None) -> tuple[str, int]:
    """The (target_type, target_id) pair for a model instance, or the empty target."""
    if obj is None:
        return "", 0
    if isinstance(obj, tuple):
        return obj
    return obj.JOB_TARGET_TYPE, obj.pk


def _active_twin(kind: str, target_type: str, target_id: int, phash: str) -> Job | None:
    return Job.objects.filter(
        kind=kind,
        target_type=target_type,
        target_id=target_id,
        params_hash=phash,
        status__in=ACTIVE_STATUSES,
    ).first()


def _idempotent_replay(user, key: str, request: tuple) -> Job | None:
    """The job an earlier request with this key made, if still within the TTL."""
    earlier = Job.objects.filter(requested_by=user, idempotency_key=key).first()
    if earlier is None:
        return None
    ttl = timedelta(seconds=settings.OFFLOAD_IDEMPOTENCY_TTL_SECONDS)
    if earlier.created_at < timezone.now() - ttl:
        # Expired: free the key for this request.
        Job.objects.filter(pk=earlier.pk).update(idempotency_key="")
        return None
    if (earlier.kind, earlier.target_type, earlier.target_id, earlier.params_hash) != request:
        raise IdempotencyKeyReused("This Idempotency-Key was already used for a different request.")
    return earlier


def _adopt_key(job: Job, key: str) -> None:
    """Give the key to the user's identical job that answered it: a retry with the key must find that job."""
    try:
        with transaction.atomic():
            Job.objects.filter(pk=job.pk, idempotency_key="").update(idempotency_key=key)
    except IntegrityError:
        pass  # a concurrent request with the same key made its own job first; it answers that key
    else:
        job.idempotency_key = key


def _add_stages(job: Job, then: list[str]) -> None:
    """The active job stands in for a pipeline's stage: the stages after it follow it too."""
    with transaction.atomic():
        # Locked: a worker finishing the job either waits for the merge and reads it, or
        # finished first, and then the stages it did not know of are queued here.
        row = Job.objects.select_for_update().filter(pk=job.pk).values_list("status", "then").first()
        if row is None:
            return
        status, stages = row
        missing = [kind for kind in then if kind not in stages]
        if not missing:
            return
        if status in ACTIVE_STATUSES:
            job.then = stages + missing
            Job.objects.filter(pk=job.pk).update(then=job.then)
        elif status == JobStatus.SUCCEEDED:
            for kind in missing:
                enqueue(kind, target=(job.target_type, job.target_id), user=job.requested_by)


def _promote(job: Job, priority: int) -> None:
    """A person asked for a job the backlog already holds: its task moves to the people's queue."""
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED, priority__lt=priority).update(priority=priority):
            return
        job.priority = priority
        # The old task may still be delivered too: whichever comes first claims the job, the
        # other finds nothing to do. A parked job (its kind paused) stays parked.
        if job.task_id != PARKED_TASK:
            job.queued_at = Job.objects.filter(pk=job.pk).values_list("queued_at", flat=True).get()
            push(job, not_before=job.queued_at if job.queued_at > timezone.now() else None)


def new_job(
    kind: str,
    target: tuple[str, int],
    params: dict[str, Any],
    phash: str,
    user,
    key: str,
    then: list[str] | None,
    priority: int,
) -> Job:
    """An unsaved job as every way of creating one writes it, queued now with a fresh task id."""
    now = timezone.now()
    return Job(
        kind=kind,
        target_type=target[0],
        target_id=target[1],
        params=params,
        params_hash=phash,
        requested_by=user,
        idempotency_key=key,
        max_attempts=settings.OFFLOAD_JOB_MAX_ATTEMPTS,
        then=list(then or []),
        priority=priority,
        task_id=new_task_id(),
        created_at=now,
        queued_at=now,
    )


# A create that collides with a job which then vanishes from sight is tried again this often.
CREATE_ATTEMPTS = 3


def enqueue(
    kind: str,
    *,
    target: models.Model | tuple[str, int] | None = None,
    params: dict[str, Any] | None = None,
    user=None,
    idempotency_key: str = "",
    then: list[str] | None = None,
    priority: int = JobPriority.PIPELINE,
) -> tuple[Job, bool]:
    """Create and queue a job; answer (job, created). An identical active job is returned instead.

    `priority` PERSON: a person asked for it directly, and it runs before its lane's backlog.
    """
    spec = get_kind(kind)
    target_type, target_id = target_of(target)
    if spec.target_type != target_type:
        raise ValueError(f"{kind} needs a {spec.target_type or 'no'} target, not {target_type!r}")
    params = params or {}
    phash = params_hash(params)
    key = stored_idempotency_key(idempotency_key.strip()) if user is not None else ""
    request = (kind, target_type, target_id, phash)
    with transaction.atomic():
        if key:
            replay = _idempotent_replay(user, key, request)
            if replay is not None:
                return replay, False
        for attempt in range(CREATE_ATTEMPTS):
            job = _insert_unless_taken(
                new_job(kind, (target_type, target_id), params, phash, user, key, then, priority)
            )
            if job is not None:
                break
            # Lost a race: to an identical active job, or to the same Idempotency-Key.
            existing = (key and _idempotent_replay(user, key, request)) or _active_twin(*request)
            if existing is None:
                # The job we collided with finished (or its key expired) before we could
                # read it: nothing is in the way any more, so create ours.
                if attempt + 1 == CREATE_ATTEMPTS:
                    raise IntegrityError(f"could not create a {kind} job: it kept colliding with one that vanished")
                continue
            if key and not existing.idempotency_key and existing.requested_by_id == user.pk:
                _adopt_key(existing, key)
            if then:
                _add_stages(existing, then)
            if priority > existing.priority:
                _promote(existing, priority)
            return existing, False
        record_event(job, JobStatus.QUEUED, nobody_joined=True)
        push(job, recorded=True)
    return job, True


def _insert_unless_taken(job: Job) -> Job | None:
    """INSERT the job, or nothing when a unique index already holds its twin (or its key): None then.

    ON CONFLICT DO NOTHING instead of a savepoint around a failing INSERT: two round trips
    fewer on every accepted request, and the transaction stays usable either way.
    """
    fields = [f for f in Job._meta.concrete_fields if not f.primary_key]
    for field in fields:
        field.pre_save(job, add=True)
    query = sql.InsertQuery(Job, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [job])
    rows = query.get_compiler(using=job._state.db or "default").execute_sql(returning_fields=[Job._meta.pk])
    # A conflict inserts nothing and RETURNING answers no row (None where one was expected).
    if not rows or rows[0] is None:
        return None
    job.pk = rows[0][0]
    job._state.adding = False
    job._state.db = job._state.db or "default"
    return job


def claim(job_id: int) -> Job | None:
    """Take the job for this worker: queued → running. None when another worker has it."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS)
    with transaction.atomic():
        # A running job whose heartbeat stopped lost its worker: a redelivered task
        # may take it over.
        job = _update_returning(
            Job.objects.filter(pk=job_id).filter(
                Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
            ),
            status=JobStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            # A lost attempt's progress is not this one's: it starts from nothing.
            progress=None,
            result=None,
        )
        if job is None:
            return None
        if job.attempts > job.max_attempts:
            attempts.close_open(job.pk, AttemptOutcome.LOST, now, error=attempts.LOST_ERROR)
            _give_up(job)
            return None
        attempts.open_attempt(job, now)
        record_event(job, "started", nobody_joined=not job.has_members)
    return job


def claim_in_one_statement(job_id: int, unless: str) -> tuple[Job | None, bool]:
    """claim() as one statement, except for a queued job where the SQL condition `unless` (alias j) holds.

    (job, True): claimed; (None, True): it had run out of attempts and failed; (None, False):
    nothing matched, and the caller takes the transactional way (a hold, a job taken or gone).
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS)
    job = statements.change_with_event(
        job_id,
        where=f"(j.status = %s AND NOT ({unless})) OR (j.status = %s AND j.heartbeat_at < %s)",
        where_params=[JobStatus.QUEUED, JobStatus.RUNNING, stale],
        changes={
            "status": JobStatus.RUNNING,
            "attempts": statements.Expression("j.attempts + 1"),
            "started_at": now,
            "heartbeat_at": now,
            "finished_at": None,
            "progress": None,
            "result": None,
        },
        event="started",
        # The attempt past the last one announces no start: it fails at once, below.
        event_when="j.attempts <= j.max_attempts",
        also=attempts.open_attempt_sql(now, when="c.attempts <= c.max_attempts"),
    )
    if job is None:
        return None, False
    if job.attempts > job.max_attempts:
        _give_up(job)
        return None, True
    return job, True


def _give_up(job: Job) -> None:
    """Every attempt so far died with its worker: stop here, not in a crash loop."""
    _finish(
        job,
        JobStatus.FAILED,
        error=(
            f"Gave up after {job.max_attempts} attempts: the worker running this "
            "job stopped (killed or crashed) each time."
        ),
    )
    # No later attempt will clear what the dead ones left half written.
    transaction.on_commit(lambda: outputs.remove_all_partial_dirs(job), robust=True)


def requeue_lost(job_id: int) -> Job | None:
    """A running job whose worker stopped beating goes back to the queue, saying which attempt was lost where.

    Its progress and partial result go with the lost attempt: the next one starts from nothing.
    None when the job's worker beat again, or it finished, before this could take it.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS)
    with transaction.atomic():
        # Locked: the lost worker, were it only slow, cannot beat or finish between the read and the change.
        running = Job.objects.select_for_update().filter(pk=job_id, status=JobStatus.RUNNING)
        job = running.filter(heartbeat_at__lt=stale).first()
        if job is None:
            return None
        lost = JobAttempt.objects.filter(job_id=job_id, finished_at__isnull=True).order_by("-number").first()
        reason = attempts.lost_reason(job, lost.host if lost else "", lost.pid if lost else None)
        # Fenced as every change is: the lost attempt's heartbeat and finish now match no row.
        _update_returning(
            Job.objects.filter(pk=job_id),
            into=job,
            status=JobStatus.QUEUED,
            queued_at=now,
            heartbeat_at=None,
            progress=None,
            result=None,
            error=reason,
        )
        attempts.close_open(job_id, AttemptOutcome.LOST, now, error=reason)
        record_event(job, JobStatus.QUEUED, nobody_joined=not job.has_members, requeue=True)
        push(job)
    return job


def _update_returning(queryset: models.QuerySet, *, into: Job | None = None, **changes: Any) -> Job | None:
    """A conditional UPDATE of at most one job that hands back the row as it now is.

    One round trip instead of the UPDATE and a SELECT after it (PostgreSQL and SQLite both
    know RETURNING). None when no row matched. into: the caller's instance, given the row's
    values in place (as refresh_from_db would) and returned.
    """
    query = queryset.query.chain(sql.UpdateQuery)
    query.add_update_values(changes)
    compiler = query.get_compiler(queryset.db)
    compiler.pre_sql_setup()
    statement, params = compiler.as_sql()
    # raw() maps the returned columns onto a Job and applies each field's converters.
    rows = list(Job.objects.raw(f"{statement} RETURNING *", params))
    if not rows:
        return None
    if into is None:
        return rows[0]
    for field in Job._meta.concrete_fields:
        setattr(into, field.attname, getattr(rows[0], field.attname))
    return into


def _finish(job: Job, status: str, *, result=None, error: str | None = None) -> bool:
    now = timezone.now()
    changes: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "heartbeat_at": None,
        "result": result,
        "error": error,
    }
    if status == JobStatus.SUCCEEDED:
        changes["progress"] = 100.0
    if status == JobStatus.FAILED:
        # Its failure group, stored with it: the admin groups failures in SQL.
        exception, message = fingerprints.classify(error)
        changes.update(
            failure_group=fingerprints.fingerprint(job.kind, exception, message),
            failure_exception=exception,
            failure_message=message,
        )
    if statements.supported():
        # One statement, unless a success has next stages to queue with it or a receiver of
        # job_event_recorded would write for it (both the way below).
        done = statements.change_with_event(
            job.pk,
            where=(
                """j.status = %s AND j.attempts = %s AND (%s <> %s OR j."then" = '[]'::jsonb)"""
                f" AND NOT ({wanted_in_transaction_sql(job, status)})"
            ),
            where_params=[JobStatus.RUNNING, job.attempts, status, JobStatus.SUCCEEDED],
            changes=changes,
            event=status,
            also=attempts.close_open_sql(status, now, error=error),
        )
        if done is not None:
            for name, value in changes.items():
                setattr(job, name, value)
            job.then, job.has_members = done.then, done.has_members
            return True
    with transaction.atomic():
        # Only the attempt that claimed the job may finish it.
        done = _update_returning(
            Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts), **changes
        )
        if done is None:
            return False
        for name, value in changes.items():
            setattr(job, name, value)
        # As the row is now: a pipeline may have added stages to this job while it ran.
        job.then, job.has_members = done.then, done.has_members
        attempts.close_open(job.pk, status, now, error=error)
        record_event(job, status, nobody_joined=not done.has_members)
        if status == JobStatus.SUCCEEDED:
            _queue_next_stages(job)
    return True


def _queue_next_stages(job: Job) -> None:
    """The pipeline: each stage that needed this one is queued with the same commit."""
    for kind in job.then:
        enqueue(kind, target=(job.target_type, job.target_id), user=job.requested_by)


def succeed(job: Job, result: dict[str, Any] | None) -> bool:
    """Mark the claimed attempt succeeded with its result."""
    return _finish(job, JobStatus.SUCCEEDED, result=result)


def fail(job: Job, error: str) -> bool:
    """Mark the claimed attempt failed for good, with a readable reason."""
    return _finish(job, JobStatus.FAILED, error=error)


def mark_cancelled(job: Job) -> bool:
    """Mark a running job cancelled once its worker has stopped the work."""
    return _finish(job, JobStatus.CANCELLED, error="Cancelled on request.")


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: 2, 4, 8 … seconds, at most 5 minutes."""
    return random.uniform(0.5, 1.0) * min(300.0, 2.0**attempt)


def fail_or_retry(job: Job, error: str, retry_after: float | None = None) -> bool:
    """After a transient failure: queue the next attempt (not before retry_after), or fail when none are left."""
    if job.attempts >= job.max_attempts:
        return fail(job, f"{error} (after {job.attempts} attempts)")
    delay = backoff_seconds(job.attempts)
    if retry_after:
        # Honour the other side's Retry-After, spread a little so workers do not return together.
        delay = max(delay, retry_after * random.uniform(1.0, 1.1))
    return _requeue(job, delay, AttemptOutcome.RETRYING, error=error)


def defer(job: Job, reason: str, delay: float) -> bool:
    """Put a claimed job back in the queue for later without spending an attempt (e.g. a busy lock)."""
    return _requeue(job, delay, AttemptOutcome.DEFERRED, error=reason, attempts=F("attempts") - 1)


def _requeue(job: Job, delay: float, outcome: str, **changes: Any) -> bool:
    """This attempt's job back to queued, due in delay seconds; False when the attempt lost it."""
    due = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        requeued = _update_returning(
            Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts),
            into=job,
            status=JobStatus.QUEUED,
            heartbeat_at=None,
            queued_at=due,
            **changes,
        )
        if requeued is None:
            return False
        attempts.close_open(job.pk, outcome, timezone.now(), error=changes.get("error"))
        record_event(job, JobStatus.QUEUED, nobody_joined=not job.has_members, requeue=True)
        push(job, not_before=due)
    return True


def heartbeat(
    job: Job, progress: float | None = None, partial_result: dict[str, Any] | None = None, *, announce: bool = True
) -> bool:
    """Record that the attempt is alive (and its progress, ETA …). False when it lost the job.

    announce=False: the row takes the progress, the event log does not (offload/jobs/runner.py
    logs progress every few seconds only).
    """
    changes: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if progress is not None:
        changes["progress"] = progress
    if partial_result is not None:
        changes["result"] = partial_result
    attempt = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts)
    if progress is None or not announce:
        # A bare heartbeat, or progress kept on the row alone, announces nothing: no need for the row back.
        if not attempt.update(**changes):
            return False
        if progress is not None:
            job.progress = progress
        if partial_result is not None:
            job.result = partial_result
        return True
    if statements.supported() and wanted_in_transaction_sql(job, "progress") == "FALSE":
        alive = statements.change_with_event(
            job.pk,
            where="j.status = %s AND j.attempts = %s",
            where_params=[JobStatus.RUNNING, job.attempts],
            changes=changes,
            event="progress",
        )
        if alive is None:
            return False
        job.progress = progress
        if partial_result is not None:
            job.result = partial_result
        return True
    with transaction.atomic():
        alive = _update_returning(attempt, **changes)
        if alive is None:
            return False
        job.progress = progress
        if partial_result is not None:
            job.result = partial_result
        record_event(job, "progress", nobody_joined=not alive.has_members)
    return True


def cancel_requested(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=False).exists()


CANCEL_FLAG_TTL = 24 * 3600


def _raise_cancel_flag(job_id: int) -> None:
    # Workers on any host poll this flag every fraction of a second while ffmpeg runs;
    # the database column stays the record, polled by the heartbeat.
    try:
        state_redis().set(redis_key("cancel", job_id), 1, ex=CANCEL_FLAG_TTL)
    except RedisError as exc:
        log.warning("cancel flag for job %s not set in Redis (%s); the heartbeat will see it", job_id, exc)


def _lower_cancel_flag(job_id: int) -> None:
    try:
        state_redis().delete(redis_key("cancel", job_id))
    except RedisError as exc:
        log.warning("cancel flag for job %s not cleared in Redis (%s); the runner checks the row", job_id, exc)


def cancel_flagged(job_id: int) -> bool:
    """Whether a cancel was requested, from the shared flag (fast) — raises when Redis is away."""
    return bool(state_redis().exists(redis_key("cancel", job_id)))


def cancel(job: Job, user) -> Job:
    """Cancel a queued job at once, or ask a running job's worker to stop."""
    now = timezone.now()
    with transaction.atomic():
        cancelled = _update_returning(
            Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED),
            into=job,
            status=JobStatus.CANCELLED,
            finished_at=now,
            cancel_requested_at=now,
            cancelled_by=user,
            error="Cancelled before it started.",
        )
        if cancelled is not None:
            record_event(job, JobStatus.CANCELLED, nobody_joined=not job.has_members)
            return job
        if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, cancelled_by=user
        ):
            job_id = job.pk
            transaction.on_commit(lambda: _raise_cancel_flag(job_id))
        job.refresh_from_db()
    if job.is_finished:
        raise JobConflict(f"Job {job.pk} already {job.status}; there is nothing to cancel.")
    return job


def retry(job: Job, user) -> Job:
    """Run a failed or cancelled job again, from a fresh set of attempts."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                again = Job.objects.filter(pk=job.pk, status__in=(JobStatus.FAILED, JobStatus.CANCELLED)).update(
                    status=JobStatus.QUEUED,
                    queued_at=timezone.now(),
                    attempts=0,
                    progress=None,
                    error=None,
                    failure_group="",
                    failure_exception="",
                    failure_message="",
                    result=None,
                    started_at=None,
                    finished_at=None,
                    heartbeat_at=None,
                    cancel_requested_at=None,
                    cancelled_by=None,
                    # A person asked for the run again: it goes before the backlog.
                    priority=JobPriority.PERSON,
                )
        except IntegrityError:
            twin = _active_twin(job.kind, job.target_type, job.target_id, job.params_hash)
            raise JobConflict(f"An identical job is already active (job {twin.pk if twin else '?'}).") from None
        job.refresh_from_db()
        if not again:
            raise JobConflict(f"Job {job.pk} is {job.status}; only failed or cancelled jobs can be retried.")
        record_event(job, JobStatus.QUEUED)
        push(job)
        # The last attempt's cancel flag must not cancel this one (the runner also checks the row).
        job_id = job.pk
        transaction.on_commit(lambda: _lower_cancel_flag(job_id), robust=True)
    return job
