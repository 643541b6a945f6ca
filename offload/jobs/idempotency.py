"""The Idempotency-Key store: a person's retried request answers the job its first try made.

The key lives on the job row (`idempotency_key`, unique per user while set), so it is written
in the same INSERT as the job and needs no store of its own. A key answers its job for
OFFLOAD_IDEMPOTENCY_TTL_SECONDS; after that it is freed for a new request.
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from offload.jobs.errors import IdempotencyKeyReused
from offload.models import Job

# Keys up to this length are stored as given; longer ones as their digest, so that two long
# keys differ whenever their texts do (the column holds 255 characters).
STORED_KEY_LENGTH = 200


def stored_idempotency_key(key: str) -> str:
    """The Idempotency-Key as the job row stores it: whole, or its SHA-256 when long."""
    if len(key) <= STORED_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def replay(user, key: str, request: tuple) -> Job | None:
    """The job an earlier request with this key made, if still within the TTL.

    request: (kind, target_type, target_id, params_hash); the same key for another request is refused.
    """
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


def adopt_key(job: Job, key: str) -> None:
    """Give the key to the user's identical job that answered it: a retry with the key must find that job."""
    try:
        with transaction.atomic():
            Job.objects.filter(pk=job.pk, idempotency_key="").update(idempotency_key=key)
    except IntegrityError:
        pass  # a concurrent request with the same key made its own job first; it answers that key
    else:
        job.idempotency_key = key
