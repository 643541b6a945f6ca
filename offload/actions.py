"""What users do, as plain functions shared by the API and the admin."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from offload import audit, jobs
from offload.jobs import control, get_kind
from offload.lib.paths import resolve_library_path
from offload.models import Job, JobPriority, JobStatus, Library, MediaItem, QueueControl


def create_library(user, name: str, path: str) -> Library:
    """A library owned by the user, at a path checked against the library roots."""
    return Library.objects.create(name=name.strip(), path=str(resolve_library_path(path)), owner=user)


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
    return jobs.enqueue(
        kind,
        target=target,
        params=cleaned,
        user=user,
        idempotency_key=idempotency_key,
        priority=JobPriority.PERSON,
    )


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


def retry_job(user, job: Job, *, reason: str = "") -> Job:
    """Run a failed or cancelled job again; written to the admin log."""
    with transaction.atomic():
        job = jobs.retry(job, user)
        audit.log_job_action(user, [job], f"Retried{f' ({reason})' if reason else ''}.")
    return job


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
