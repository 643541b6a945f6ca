"""The job's JSON (CONTRACT, Jobs): one definition, for REST answers and the event log alike."""

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
    """The CONTRACT's job JSON, the same in REST and on the websocket."""
    return {name: read(job) for name, read in FIELDS.items()}
