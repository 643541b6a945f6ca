"""What users do, as plain functions shared by the API and the admin."""

import logging
import os
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django_q.models import Schedule

from offload import access, audit, jobs
from offload import permissions as rules
from offload.jobs import (
    accept,
    cluster_stat,
    control,
    get_kind,
    params_hash,
    quiet,
    run_schedule,
    stored_idempotency_key,
)
from offload.lib.paths import InvalidPath, library_path_as_given, library_roots, resolve_library_path
from offload.models import FINISHED_STATUSES, Job, JobPriority, JobStatus, Library, MediaItem, QueueControl

log = logging.getLogger(__name__)


def may_create_libraries(user) -> bool:
    """Those with the permission create libraries; other users only where the operator allows it."""
    return rules.CREATE_LIBRARY.allows(user)


def check_folder_for(user, folder: Path) -> None:
    """InvalidPath when a user's new library would equal, contain or lie inside one they do not own.

    Libraries they are only a member of count too: a library of their own on that folder would
    keep showing them its files after their membership ends. The reason names no library: who
    has which folder is not theirs to learn.
    """
    if folder in library_roots():
        raise InvalidPath("A library root cannot be a library itself; choose a folder inside it.")
    for other in Library.objects.exclude(owner_id=user.pk).values_list("path", flat=True).iterator():
        other_path = Path(other)
        if folder == other_path or folder.is_relative_to(other_path) or other_path.is_relative_to(folder):
            raise InvalidPath("This folder overlaps a library you do not own; choose another folder.")


def create_library(user, name: str, path: str) -> Library:
    """A library owned by the user, at a path checked against the library roots and the libraries they do not own.

    Without the permission to create libraries anywhere, the overlap is checked on the path as
    given before anything on disk is read, then on the resolved one: whether a folder inside
    someone else's library exists, or where a link in it leads, is not the asker's to learn.
    """
    if not may_create_libraries(user):
        raise PermissionDenied("You may not create libraries.")
    anywhere = user.has_perm(rules.CREATE_LIBRARY.permission)
    if not anywhere:
        check_folder_for(user, library_path_as_given(path))
    try:
        folder = resolve_library_path(path)
    except InvalidPath:
        if not anywhere:
            # A link to a missing folder inside another's library: the overlap answers, not "missing".
            check_folder_for(user, Path(os.path.realpath(library_path_as_given(path))))
        raise
    with transaction.atomic():
        if not anywhere:
            check_folder_for(user, folder)
        return Library.objects.create(name=name.strip(), path=str(folder), owner=user)


def update_library(user, library: Library, changes: dict[str, Any]) -> Library:
    """Rename a library or set who, besides its owner, may see it; the members who leave lose its jobs."""
    if not rules.CHANGE_LIBRARY.allows(user):
        raise PermissionDenied("You may not change libraries.")
    with transaction.atomic():
        if "name" in changes:
            library.name = changes["name"].strip()
            library.save(update_fields=["name"])
        if "members" in changes:
            library.members.set(changes["members"])
    return library


def request_job(
    user, kind: str, target: Any = None, params: dict[str, Any] | None = None, idempotency_key: str = ""
) -> tuple[Job, bool]:
    """A person asks for a job of a registered kind: (job, created).

    PermissionDenied when the kind is not theirs to ask for; ValueError (with the reason)
    for params the kind refuses. Access to the target is the caller's to check first.
    """
    spec = get_kind(kind)
    if not spec.may_request(user):
        raise PermissionDenied(f"Only staff may ask for {kind}.")
    cleaned = spec.clean_params(target, params or {})
    job, created = jobs.enqueue(
        kind,
        target=target,
        params=cleaned,
        user=user,
        idempotency_key=idempotency_key,
        priority=JobPriority.PERSON,
    )
    if not created and job.is_active:
        # Someone else's identical job answers: the asker sees it from now on.
        access.join_job(user, job)
    return job, created


# A BIGINT id: anything outside names no target (and would make PostgreSQL refuse the statement).
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1


def request_job_on(
    user, kind: str, target_pk: Any, params: dict[str, Any] | None = None, idempotency_key: str = ""
) -> tuple[Job, bool]:
    """A person asks for a job on a target named by id: checked, deduplicated and queued in one statement.

    Http404 for a target the user cannot see; otherwise as request_job. Anything the one
    statement cannot settle (a refusal, params checked against the target, a race, a join)
    goes the general way, which answers exactly as before.
    """
    spec = get_kind(kind)
    accepted = None
    # The one statement checks what the user sees; someone who sees more than their own targets
    # (staff) takes it only with the permission that lets them ask on anyone's.
    on_any_seen = not user.is_staff or user.has_perm(rules.REQUEST_JOB.permission)
    if on_any_seen and spec.may_request(user) and spec.validate is None and accept.supported():
        try:
            target_id = int(target_pk)
            cleaned = spec.clean_params(None, params or {})
        except (TypeError, ValueError):
            target_id, cleaned = None, None
        if target_id is not None and _ID_MIN <= target_id <= _ID_MAX:
            key = stored_idempotency_key(idempotency_key.strip())
            accepted = accept.accept(
                user,
                kind,
                spec.target_type,
                target_id,
                cleaned,
                params_hash(cleaned),
                key,
                visible_to=access.targets_for,
            )
            if accepted is not None and accept.answers_as_is(accepted, user, key):
                return accepted.job, accepted.created
    target = access.get_target_for_user(user, spec.target_type, target_pk)
    if not rules.REQUEST_JOB.allows(user, target):
        raise PermissionDenied(f"You may not ask for {kind} on someone else's {spec.target_type}.")
    return request_job(user, kind, target, params, idempotency_key)


def edit_item(user, item: MediaItem, changes: dict[str, Any]) -> MediaItem:
    """Apply an operator's edit to descriptive fields and lock them against enrichment."""
    fields = [f for f in changes if f in MediaItem.DESCRIPTIVE_FIELDS]
    with transaction.atomic():
        # Provenance is re-read under the row lock: an enrichment may have committed
        # since the item was fetched, and what it recorded must not be lost.
        provenance = MediaItem.objects.select_for_update().values_list("provenance", flat=True).get(pk=item.pk)
        for field in fields:
            setattr(item, field, changes[field])
        item.locked_fields = sorted(set(item.locked_fields) | set(fields))
        item.provenance = {**(provenance or {}), **dict.fromkeys(fields, "user")}
        item.save(update_fields=[*fields, "locked_fields", "provenance", "updated_at"])
    return item


def unlock_fields(user, item: MediaItem, fields: list[str]) -> MediaItem:
    """Let enrichment set these fields again; they keep their values until it does."""
    unknown = sorted(set(fields) - set(MediaItem.DESCRIPTIVE_FIELDS))
    if unknown:
        raise ValueError(f"Not descriptive fields: {', '.join(unknown)}.")
    with transaction.atomic():
        locked = MediaItem.objects.select_for_update().values_list("locked_fields", flat=True).get(pk=item.pk)
        item.locked_fields = [f for f in locked if f not in fields]
        item.save(update_fields=["locked_fields", "updated_at"])
    return item


def cancel_job(user, job: Job) -> Job:
    """Cancel a queued job, or ask a running one's worker to stop; written to the admin log."""
    with transaction.atomic():
        job = jobs.cancel(job, user)
        done = "Cancelled." if job.status == JobStatus.CANCELLED else "Asked its worker to cancel it."
        audit.log_job_action(user, [job], done)
    return job


def leave_job(user, job: Job) -> Job:
    """A joiner no longer follows the job; it runs on for the others."""
    access.leave_job(user, job)
    return job


def retry_job(user, job: Job, *, reason: str = "") -> Job:
    """Run a failed or cancelled job again; written to the admin log."""
    with transaction.atomic():
        job = jobs.retry(job, user)
        audit.log_job_action(user, [job], f"Retried{f' ({reason})' if reason else ''}.")
    return job


def delete_finished_jobs(user, queryset) -> int:
    """Delete the finished jobs among these (their events and attempts go with them); logged. Answers how many."""
    with transaction.atomic():
        # Locked: a job cannot be retried back to queued between the check and the delete.
        chosen = Job.objects.filter(pk__in=queryset.values("pk"), status__in=FINISHED_STATUSES)
        finished = list(chosen.select_for_update())
        audit.log_job_action(user, finished, "Deleted.", deleted=True)
        Job.objects.filter(pk__in=[job.pk for job in finished], status__in=FINISHED_STATUSES).delete()
    return len(finished)


def pause_kind(user, kind: str) -> QueueControl:
    """Pause a kind on every host: its jobs are accepted and wait; written to the admin log."""
    with transaction.atomic():
        done = control.pause(kind)
        audit.log_queue_action(user, done, f"Paused {kind}.")
    return done


def resume_kind(user, kind: str) -> QueueControl:
    """Resume a paused kind; its waiting jobs start in queue order; written to the admin log."""
    with transaction.atomic():
        done = control.resume(kind)
        audit.log_queue_action(user, done, f"Resumed {kind}.")
    return done


def cap_kind(user, kind: str, concurrency: int | None) -> QueueControl:
    """Cap how many jobs of a kind run at once across all hosts (None: no cap); written to the admin log."""
    with transaction.atomic():
        done = control.set_concurrency(kind, concurrency)
        cap = "no cap" if concurrency is None else f"at most {concurrency} at a time"
        audit.log_queue_action(user, done, f"Set {kind} to {cap}.")
    return done


def quiet_cluster(user, cluster_id: str, *, quiet_it: bool = True) -> tuple[str, int]:
    """Quiet a worker cluster on whatever host it runs (it finishes its jobs and takes no more), or wake it.

    Answers the cluster's (host, pid). ValueError when no cluster with that id reports in.
    """
    if not rules.STEER_QUEUES.allows(user):
        raise PermissionDenied("You may not quiet or wake worker clusters.")
    stat = cluster_stat(cluster_id)
    if stat is None:
        raise ValueError("No cluster with that id is reporting: it may have stopped.")
    quiet.set_quiet(stat.host, stat.sentinel, quiet_it)
    log.info("%s %s cluster %s on %s/%s", user, "quieted" if quiet_it else "woke", cluster_id, stat.host, stat.pid)
    return stat.host, stat.pid


def run_schedule_now(user, schedule_id: int) -> str:
    """Run a periodic task now, outside its schedule (staff who steer the queues). Answers its task's name."""
    if not rules.STEER_QUEUES.allows(user):
        raise PermissionDenied("You may not run schedules.")
    schedule = Schedule.objects.filter(pk=schedule_id).first()
    if schedule is None:
        raise ValueError("No such schedule.")
    run_schedule(schedule)
    log.info("%s ran schedule %r now", user, schedule.name)
    return schedule.name
