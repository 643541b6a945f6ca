"""Operators' holds on job kinds: pause, resume and a concurrency cap, applied where a worker picks a job up.

The state is a `QueueControl` row per kind in the database, so every host reads the same
and it survives restarts. A worker's claim reads it in the same statement (PostgreSQL) or
with one query before it, so a change takes effect at once, for the next job picked up:

- paused: the job is parked (still queued, no attempt spent, its task gone). Resuming
  pushes the parked jobs again, people's first, then in queue order. A parked job is
  neither running nor waiting on a queue row, so the reaper never touches it.
- capped: under the control row's lock, the running jobs of the kind are counted; when
  the cap is full the job goes back to the queue for a moment, as a job that finds its
  lock taken does, without spending an attempt.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.dispatch import Signal
from django.utils import timezone

# max_concurrency stays importable from here: the API's queue serializer reads it as control.max_concurrency().
from offload.caps import max_concurrency as max_concurrency
from offload.caps import parse_cap
from offload.jobs import statements, transitions
from offload.jobs.events import wanted_in_transaction_sql
from offload.jobs.kinds import get_kind
from offload.jobs.queue import PARKED_TASK, push
from offload.models import Job, JobStatus, QueueControl

# Why a worker did not run a job it picked up (the task's result in django-q2).
NOT_CLAIMED = "not claimed"
PARKED_OUTCOME = "paused"
HELD_OUTCOME = "at its kind's cap"

# Sent once a pause, resume or cap has committed: the waiting_reason of the kind's queued jobs
# changed without an event of theirs, so whoever keeps their answers (the API cache) drops them.
# Arguments: kind.
holds_changed = Signal()


def _announce_on_commit(kind: str) -> None:
    transaction.on_commit(lambda: holds_changed.send_robust(sender=QueueControl, kind=kind), robust=True)


def _claimed(job_id: int) -> tuple[Job | None, str]:
    job = transitions.claim(job_id)
    return job, "" if job is not None else NOT_CLAIMED


# A queued job of a kind with any hold takes the transactional way below, which applies it.
_HELD_SQL = (
    f"EXISTS (SELECT 1 FROM {QueueControl._meta.db_table} c"  # noqa: S608 (a table name from the model)
    " WHERE c.kind = j.kind AND (c.paused OR c.concurrency IS NOT NULL))"
)


def pick_up(job_id: int) -> tuple[Job | None, str]:
    """Claim the job for this worker unless its kind is paused or at its cap: (job, "") or (None, why not)."""
    if statements.supported() and wanted_in_transaction_sql(None, "started") == "FALSE":
        # The common case in one round trip: no hold on its kind, read in the claim itself,
        # so a pause or a cap set a moment ago applies to the very next job.
        job, decided = transitions.claim_in_one_statement(job_id, unless=_HELD_SQL)
        if decided:
            return job, "" if job is not None else NOT_CLAIMED
    controls = QueueControl.objects.filter(kind=OuterRef("kind"))
    row = (
        Job.objects.filter(pk=job_id)
        .annotate(paused=Subquery(controls.values("paused")[:1]), cap=Subquery(controls.values("concurrency")[:1]))
        .values_list("kind", "status", "paused", "cap")
        .first()
    )
    if row is None:
        return None, NOT_CLAIMED
    kind, status, paused, cap = row
    # A running job taken over from a lost worker carries on whatever the holds say.
    if status != JobStatus.QUEUED or (not paused and cap is None):
        return _claimed(job_id)
    with transaction.atomic():
        # Claims of a held kind go one at a time: the count below and the claim are one step.
        control = QueueControl.objects.select_for_update().filter(kind=kind).first()
        if control is not None and control.paused:
            Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(task_id=PARKED_TASK)
            return None, PARKED_OUTCOME
        if control is not None and control.concurrency is not None:
            running = Job.objects.filter(kind=kind, status=JobStatus.RUNNING).count()
            if running >= control.concurrency:
                _hold_back(job_id)
                return None, HELD_OUTCOME
        return _claimed(job_id)


def _hold_back(job_id: int) -> None:
    """Queue the job's task again a moment later; the job itself stays queued, its attempts untouched."""
    job = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).first()
    if job is not None:
        push(job, not_before=timezone.now() + timedelta(seconds=settings.OFFLOAD_QUEUE_CAP_WAIT_SECONDS))


def control_for(kind: str) -> QueueControl:
    """The kind's control row, unsaved when it has none (a registered kind runs freely)."""
    get_kind(kind)
    return QueueControl.objects.filter(kind=kind).first() or QueueControl(kind=kind)


def pause(kind: str) -> QueueControl:
    """Stop starting jobs of this kind: new ones are accepted and wait, running ones finish."""
    get_kind(kind)
    with transaction.atomic():
        control, _ = QueueControl.objects.select_for_update().get_or_create(kind=kind)
        control.paused = True
        control.updated_at = timezone.now()
        control.save(update_fields=["paused", "updated_at"])
        _announce_on_commit(kind)
    return control


def resume(kind: str) -> QueueControl:
    """Start jobs of this kind again; the parked ones go back to the queue in queue order."""
    get_kind(kind)
    now = timezone.now()
    with transaction.atomic():
        # Under the row lock: a worker parking a job either parked it before (and it is
        # pushed here) or reads the resumed row after, and runs it.
        control, _ = QueueControl.objects.select_for_update().get_or_create(kind=kind)
        control.paused = False
        control.updated_at = now
        control.save(update_fields=["paused", "updated_at"])
        _announce_on_commit(kind)
        parked = Job.objects.filter(kind=kind, status=JobStatus.QUEUED, task_id=PARKED_TASK)
        for job in parked.order_by("-priority", "queued_at", "id"):
            push(job, not_before=job.queued_at if job.queued_at > now else None)
    return control


def set_concurrency(kind: str, concurrency: int | None) -> QueueControl:
    """Cap how many jobs of this kind run at once across all hosts (None: no cap)."""
    get_kind(kind)
    concurrency = parse_cap(concurrency)
    with transaction.atomic():
        control, _ = QueueControl.objects.select_for_update().get_or_create(kind=kind)
        control.concurrency = concurrency
        control.updated_at = timezone.now()
        control.save(update_fields=["concurrency", "updated_at"])
        _announce_on_commit(kind)
    return control
