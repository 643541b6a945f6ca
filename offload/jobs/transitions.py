"""The job spine's transitions: a job queued, claimed, finished, retried after a failure, deferred or lost.

A person's cancel and retry of an existing job are in offload/jobs/requests.py; a running
attempt's heartbeat and its cancel check, which change no status, in offload/jobs/liveness.py.

Each transition is one transaction that changes the row with a conditional UPDATE,
appends its JobEvent and, where work must run, writes the django-q2 queue row. So a
rollback leaves no trace, and a task delivered twice finds nothing to do the second time.
The SQL lives on the job's queryset (offload/models.py, JobQuerySet) and, for the worker's
one-statement forms, in offload/jobs/statements.py.
"""

import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from offload.jobs import attempts, delivery, fingerprints, idempotency, pipeline, statements
from offload.jobs.events import record_event
from offload.jobs.identity import active_twin, new_job, params_hash, target_of
from offload.jobs.kinds import get_kind
from offload.jobs.queue import push
from offload.lib import outputs
from offload.models import AttemptOutcome, Job, JobAttempt, JobPriority, JobStatus

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
    key = idempotency.stored_idempotency_key(idempotency_key.strip()) if user is not None else ""
    request = (kind, target_type, target_id, phash)
    with transaction.atomic():
        if key and (replay := idempotency.replay(user, key, request)) is not None:
            return replay, False
        for attempt in range(CREATE_ATTEMPTS):
            job = Job.objects.insert_unless_taken(
                new_job(kind, (target_type, target_id), params, phash, user, key, then, priority)
            )
            if job is not None:
                break
            # Lost a race: to an identical active job, or to the same Idempotency-Key.
            existing = (key and idempotency.replay(user, key, request)) or active_twin(*request)
            if existing is None:
                # The job we collided with finished (or its key expired) before we could
                # read it: nothing is in the way any more, so create ours.
                if attempt + 1 == CREATE_ATTEMPTS:
                    raise IntegrityError(f"could not create a {kind} job: it kept colliding with one that vanished")
                continue
            if key and not existing.idempotency_key and existing.requested_by_id == user.pk:
                idempotency.adopt_key(existing, key)
            if then:
                _add_stages(existing, then)
            if priority > existing.priority:
                pipeline.promote(existing, priority)
            return existing, False
        record_event(job, JobStatus.QUEUED, nobody_joined=True)
        push(job, recorded=True)
    return job, True


def _add_stages(job: Job, then: list[str]) -> None:
    """The active job stands in for a pipeline's stage; stages it can no longer queue are queued here."""
    with transaction.atomic():
        for kind in pipeline.join_stages(job, then):
            enqueue(kind, target=(job.target_type, job.target_id), user=job.requested_by)


def _claim_changes(now) -> dict[str, Any]:
    # A lost attempt's progress is not this one's: it starts from nothing.
    return {
        "status": JobStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "finished_at": None,
        "progress": None,
        "result": None,
    }


def claim(job_id: int) -> Job | None:
    """Take the job for this worker: queued → running. None when another worker has it."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS)
    with transaction.atomic():
        # A running job whose heartbeat stopped lost its worker: a redelivered task may take it over.
        job = (
            Job.objects.filter(pk=job_id)
            .filter(Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale))
            .update_returning(attempts=F("attempts") + 1, **_claim_changes(now))
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
    job = statements.start_attempt(job_id, unless, _claim_changes(now), stale)
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


# What a lost attempt takes with it: its heartbeat, its progress and its partial result.
_LOST_WITH_IT = ("heartbeat_at", "progress", "result")


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
        Job.objects.filter(pk=job_id).update_returning(
            into=job, status=JobStatus.QUEUED, queued_at=now, error=reason, **dict.fromkeys(_LOST_WITH_IT)
        )
        attempts.close_open(job_id, AttemptOutcome.LOST, now, error=reason)
        record_event(job, JobStatus.QUEUED, nobody_joined=not job.has_members, requeue=True)
        push(job)
    return job


def _finish(job: Job, status: str, *, result=None, error: str | None = None) -> bool:
    now = timezone.now()
    changes: dict[str, Any] = {"status": status, "finished_at": now, "heartbeat_at": None}
    changes.update(result=result, error=error)
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
    if statements.supported() and (done := statements.finish(job, status, changes, now, error)) is not None:
        _take(job, changes, done)
        return True
    with transaction.atomic():
        # Only the attempt that claimed the job may finish it.
        done = Job.objects.for_attempt(job).update_returning(**changes)
        if done is None:
            return False
        _take(job, changes, done)
        attempts.close_open(job.pk, status, now, error=error)
        delivery.acknowledge_in_transaction()
        record_event(job, status, nobody_joined=not done.has_members)
        if status == JobStatus.SUCCEEDED:
            for kind in job.then:  # the pipeline: each stage that needed this one, queued with the same commit
                enqueue(kind, target=(job.target_type, job.target_id), user=job.requested_by)
    return True


def _take(job: Job, changes: dict[str, Any], done: Job) -> None:
    """The caller's job as the change left the row; a pipeline may have added stages to it while it ran."""
    for name, value in changes.items():
        setattr(job, name, value)
    job.then, job.has_members = done.then, done.has_members


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
        requeued = Job.objects.for_attempt(job).update_returning(
            into=job, status=JobStatus.QUEUED, heartbeat_at=None, queued_at=due, **changes
        )
        if requeued is None:
            return False
        attempts.close_open(job.pk, outcome, timezone.now(), error=changes.get("error"))
        record_event(job, JobStatus.QUEUED, nobody_joined=not job.has_members, requeue=True)
        push(job, not_before=due)
    return True
