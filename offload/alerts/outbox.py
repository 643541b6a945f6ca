"""The outbox: a delivery row per matching endpoint, written inside the transaction of the event.

`on_job_event` receives the spine's `job_event_recorded` signal, which is sent inside the
transaction that finished (or cancelled) the job: the rows commit with the change, so a crash
after the commit cannot lose them and a rollback cannot send them. With the ORM broker each
row's task is written in the same transaction too; with Redis it leaves after the commit, and
the sweep (every minute) queues anything whose task was lost.

Noise control happens here, as the rows are written: a duplicate (same endpoint, event and
target within OFFLOAD_NOTIFY_DEDUPE_SECONDS) is recorded as `deduped`, and a notification past
the owner's hourly limit for the agent as `limited`; neither is sent. A scan's pipeline stages
(its probes, thumbnails, enrichment) never notify one by one: the scan notifies once, with
its counts.
"""

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from offload.alerts import messages, monitoring, queueing
from offload.alerts.models import Agent, Delivery, Endpoint, EventType, Outcome
from offload.models import Job, JobEvent, JobMember, JobPriority, Library, MediaItem

FINISHED = {
    "succeeded": EventType.JOB_SUCCEEDED,
    "failed": EventType.JOB_FAILED,
    "cancelled": EventType.JOB_CANCELLED,
}
SCAN_KIND = "library.scan"
PUSH_AGENTS = (Agent.NTFY, Agent.GOTIFY, Agent.DISCORD)


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def event_type(job: Job, status: str) -> str | None:
    """What a job's final status notifies as, or None when it never notifies on its own."""
    event = FINISHED.get(status)
    if event is None:
        return None
    if job.kind == SCAN_KIND:
        return EventType.SCAN_FINISHED if event == EventType.JOB_SUCCEEDED else event
    if job.priority == JobPriority.PIPELINE and job.target_type == "media":
        # A stage a scan queued for one of its items: the scan notifies once for all of them.
        return None
    return event


# The SQL twin of _subscribers (alias j, the job row): an active endpoint of someone who sees the
# job. Wider than the Python rules (events, kinds and libraries are left to on_job_event): a job
# it matches is finished in a transaction and on_job_event decides.
def may_hear_sql() -> str:
    """The condition, once the apps are loaded (the user model's table)."""
    return f"""EXISTS (
        SELECT 1 FROM {Endpoint._meta.db_table} e JOIN {get_user_model()._meta.db_table} u ON u.id = e.owner_id
        WHERE NOT e.paused AND u.is_active AND (
            u.is_staff OR e.owner_id = j.requested_by_id
            OR (j.has_members AND EXISTS (
                SELECT 1 FROM {JobMember._meta.db_table} m WHERE m.job_id = j.id AND m.user_id = e.owner_id))
        )
    )"""  # noqa: S608 (table names from the models)


def may_notify(job: Job | None, status: str) -> bool:
    """Whether an event of this job could write deliveries (the spine then records it in a transaction)."""
    return status in FINISHED and (job is None or event_type(job, status) is not None)


def on_job_event(sender, event: JobEvent, job: Job, **kwargs: Any) -> None:
    """job_event_recorded: write the deliveries a finished job causes, in its transaction."""
    kind = event_type(job, event.event)
    if kind is None:
        return
    endpoints = _subscribers(job, kind)
    if not endpoints:
        return
    library_id = _library_of(job) if any(e.libraries for e in endpoints) else None
    endpoints = [e for e in endpoints if _wants(e, job, library_id)]
    if endpoints:
        target = f"{job.target_type}:{job.target_id}" if job.target_type else f"job:{job.pk}"
        write(endpoints, kind, target, _data(job, kind, event.payload), job=job)


def _subscribers(job: Job, kind: str) -> list[Endpoint]:
    """Active endpoints of the people who see the job: its requester, its joiners, staff."""
    who = Q(owner__is_staff=True)
    if job.requested_by_id is not None:
        who |= Q(owner_id=job.requested_by_id)
    if job.has_members:
        who |= Q(owner__joined_jobs__job=job)
    # The events list is filtered here, not in SQL: SQLite's JSON has no containment lookup.
    rows = Endpoint.objects.filter(who, paused=False, owner__is_active=True).select_related("owner").distinct()
    return [endpoint for endpoint in rows if kind in endpoint.events]


def _wants(endpoint: Endpoint, job: Job, library_id: int | None) -> bool:
    if endpoint.kinds and job.kind not in endpoint.kinds:
        return False
    return not endpoint.libraries or library_id in endpoint.libraries


def _library_of(job: Job) -> int | None:
    if job.target_type == "library":
        return job.target_id
    if job.target_type == "media":
        return MediaItem.objects.filter(pk=job.target_id).values_list("library_id", flat=True).first()
    return None


def _data(job: Job, kind: str, job_json: dict[str, Any]) -> dict[str, Any]:
    """The body's `data`: the job's JSON (as docs/api.md gives it), and what it acted on, by name."""
    data: dict[str, Any] = {"job": job_json}
    if job.target_type == "media":
        item = MediaItem.objects.filter(pk=job.target_id).values("id", "title", "relative_path").first()
        if item:
            data["target"] = {"type": "media", "id": item["id"], "name": item["title"] or item["relative_path"]}
    elif job.target_type == "library":
        library = Library.objects.filter(pk=job.target_id).values("id", "name").first()
        if library:
            data["target"] = {"type": "library", "id": library["id"], "name": library["name"]}
            if kind == EventType.SCAN_FINISHED:
                data["library"] = library
                result = job.result or {}
                data["counts"] = {
                    "added": result.get("created", 0),
                    "changed": result.get("changed", 0) + result.get("moved", 0),
                    "removed": result.get("removed", 0),
                    "failed": result.get("failed", 0),
                }
    return data


def write(
    endpoints: list[Endpoint],
    kind: str,
    target: str,
    data: dict[str, Any],
    *,
    job: Job | None = None,
    noisy: bool = True,
) -> list[Delivery]:
    """One delivery per endpoint (deduped and limited when `noisy`), due ones queued, in the caller's transaction."""
    now = timezone.now()
    payload = messages.body(kind, now.isoformat().replace("+00:00", "Z"), data)
    rows = []
    for endpoint in endpoints:
        outcome = Outcome.PENDING
        if noisy and _duplicate(endpoint, kind, target, now):
            outcome = Outcome.DEDUPED
        elif _over_limit(endpoint, now):
            outcome = Outcome.LIMITED
        rows.append(
            Delivery(
                endpoint=endpoint,
                job=job,
                event=kind,
                target=target,
                webhook_id=new_webhook_id(),
                payload=payload,
                outcome=outcome,
                next_attempt_at=now if outcome == Outcome.PENDING else None,
                queued_at=now if outcome == Outcome.PENDING else None,
                created_at=now,
            )
        )
    created = Delivery.objects.bulk_create(rows)
    for row in created:
        if row.outcome == Outcome.PENDING:
            queueing.queue_attempt(row.pk)
    held = [(row.endpoint.agent, row.outcome) for row in created if row.outcome != Outcome.PENDING]
    if held:
        transaction.on_commit(lambda: [monitoring.counted(agent, outcome) for agent, outcome in held])
    return created


def _duplicate(endpoint: Endpoint, kind: str, target: str, now) -> bool:
    window = settings.OFFLOAD_NOTIFY_DEDUPE_SECONDS
    if not window or not target:
        return False
    return (
        Delivery.objects.filter(
            endpoint=endpoint, event=kind, target=target, created_at__gte=now - timedelta(seconds=window)
        )
        .exclude(outcome=Outcome.DEDUPED)
        .exists()
    )


def hourly_limit(agent: str) -> int | None:
    """Notifications one user may get through this agent an hour; None: no limit (webhooks)."""
    if agent == Agent.EMAIL:
        return settings.OFFLOAD_NOTIFY_EMAILS_PER_HOUR
    if agent in PUSH_AGENTS:
        return settings.OFFLOAD_NOTIFY_PUSHES_PER_HOUR
    return None


def _over_limit(endpoint: Endpoint, now) -> bool:
    limit = hourly_limit(endpoint.agent)
    if limit is None:
        return False
    agents = [Agent.EMAIL] if endpoint.agent == Agent.EMAIL else list(PUSH_AGENTS)
    used = (
        Delivery.objects.filter(
            endpoint__owner_id=endpoint.owner_id, endpoint__agent__in=agents, created_at__gte=now - timedelta(hours=1)
        )
        .exclude(outcome__in=[Outcome.LIMITED, Outcome.DEDUPED])
        .count()
    )
    return used >= limit
