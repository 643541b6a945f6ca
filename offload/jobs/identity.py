"""A job's identity: its kind, its target and its parameters (hashed), and the row every way of creating it writes.

Two requests with the same identity ask for the same work: while one such job is active, a
unique index over (kind, target, params_hash) keeps a second from being made
(offload/jobs/transitions.py answers the active one instead).
"""

import hashlib
import json
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from offload.jobs.queue import new_task_id
from offload.models import ACTIVE_STATUSES, Job


def params_hash(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def active_twin(kind: str, target_type: str, target_id: int, phash: str) -> Job | None:
    """The active job with this identity, if any: the one the unique index keeps a second from joining."""
    return Job.objects.filter(
        kind=kind, target_type=target_type, target_id=target_id, params_hash=phash, status__in=ACTIVE_STATUSES
    ).first()


def target_of(obj: models.Model | tuple[str, int] | None) -> tuple[str, int]:
    """The (target_type, target_id) pair for a model instance, or the empty target."""
    if obj is None:
        return "", 0
    if isinstance(obj, tuple):
        return obj
    return obj.JOB_TARGET_TYPE, obj.pk


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
