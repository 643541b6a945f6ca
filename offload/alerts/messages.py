"""What a notification says: the webhook body, and the title, text and link the other agents show.

Pure functions over the delivery's stored body, tested without I/O.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings

OUTCOME_WORDS = {
    "job.succeeded": "succeeded",
    "job.failed": "failed",
    "job.cancelled": "was cancelled",
    "scan.finished": "finished",
}
# Discord embed colours per outcome.
COLOURS = {"job.succeeded": 0x2E7D32, "scan.finished": 0x2E7D32, "job.failed": 0xC62828, "job.cancelled": 0x757575}


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    # The job's admin page, or the site.
    link: str
    event: str
    kind: str = ""
    item: str = ""
    outcome: str = ""


def body(event: str, timestamp: str, data: dict[str, Any]) -> dict[str, Any]:
    """The webhook body (docs/api.md): {"type", "timestamp", "data"}."""
    return {"type": event, "timestamp": timestamp, "data": data}


def job_link(job_id: int | None) -> str:
    base = settings.OFFLOAD_PUBLIC_URL
    return f"{base}/admin/offload/job/{job_id}/change/" if job_id else f"{base}/admin/"


def describe(payload: dict[str, Any]) -> Message:
    """Title, text and link for people, from a webhook body."""
    event = payload["type"]
    data = payload.get("data", {})
    job = data.get("job") or {}
    if event == "test":
        return Message(
            title="Offload: test notification",
            text=f"This is a test from Offload for the endpoint {data.get('endpoint', {}).get('name', '')!r}.",
            link=job_link(None),
            event=event,
            outcome="test",
        )
    if event == "endpoint.paused":
        endpoint = data.get("endpoint", {})
        return Message(
            title=f"Offload paused the notification endpoint {endpoint.get('name', '')!r}",
            text=f"{endpoint.get('reason', '')} Edit it and resume it in Offload when it answers again.",
            link=job_link(None),
            event=event,
            outcome="paused",
        )
    item = (data.get("target") or {}).get("name") or _target_words(job.get("target"))
    outcome = OUTCOME_WORDS.get(event, event)
    kind = job.get("kind", "")
    if event == "scan.finished":
        library = data.get("library", {})
        counts = data.get("counts", {})
        item = library.get("name", item)
        text = ", ".join(f"{counts.get(name, 0)} {name}" for name in ("added", "changed", "removed", "failed"))
        title = f"Scan of {item} finished"
    else:
        title = f"{kind} {outcome}: {item}" if item else f"{kind} {outcome}"
        text = job.get("error") or f"Job {job.get('id')} ({kind}) {outcome}."
    return Message(title, text, job_link(job.get("id")), event, kind, item, outcome)


def _target_words(target: dict[str, Any] | None) -> str:
    return f"{target['type']} {target['id']}" if target else ""
