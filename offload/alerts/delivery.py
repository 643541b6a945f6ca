"""Delivery attempts on the notify lane: claim, send through the agent, record, and decide what follows.

An attempt claims its row with a conditional UPDATE that takes a lease, so a task delivered
twice sends once, and a worker killed mid-attempt leaves a lease that expires: the task
comes back (django-q2's `retry`, or the minute sweep) and sends again with the same
`webhook-id`, on which receivers dedupe. A failed attempt is retried after 1 min, 5 min,
15 min, 1 h and 4 h (each ±10%), then the delivery is dead. 410 Gone disables the endpoint;
an endpoint whose every attempt failed for 24 hours is paused and its owner told by email.
"""

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from offload.alerts import monitoring, outbox, queueing
from offload.alerts.agents import SENDERS, Result
from offload.alerts.models import Agent, Delivery, DeliveryAttempt, Endpoint, EventType, Outcome

log = logging.getLogger(__name__)

# Seconds before each retry: the design's webhook schedule.
RETRY_DELAYS = (60, 300, 900, 3600, 4 * 3600)
JITTER = 0.1
# An endpoint failing this long is paused.
PAUSE_AFTER = timedelta(hours=24)
# A lost task (a killed worker, a Redis push lost) is picked up by the sweep after this.
SWEEP_GRACE = timedelta(seconds=30)
# A task queued this long ago whose attempt never ran is taken as lost and queued again.
REQUEUE_AFTER = timedelta(minutes=10)
SWEEP_BATCH = 500


def lease_seconds() -> float:
    return settings.OFFLOAD_NOTIFY_TIMEOUT + 20


def retry_delay(attempt: int) -> float | None:
    """Seconds before the attempt after `attempt` failed ones, with jitter; None when none is left."""
    if attempt > len(RETRY_DELAYS):
        return None
    base = RETRY_DELAYS[attempt - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def attempt(delivery_id: int, now: datetime | None = None) -> str:
    """The notify lane's task: one attempt of a delivery that is due; answer its outcome."""
    now = now or timezone.now()
    due = Q(outcome__in=[Outcome.PENDING, Outcome.FAILED], next_attempt_at__lte=now)
    free = Q(leased_until__isnull=True) | Q(leased_until__lt=now)
    taken = Delivery.objects.filter(due, free, pk=delivery_id).update(
        leased_until=now + timedelta(seconds=lease_seconds()), attempt=F("attempt") + 1
    )
    if not taken:
        return "skipped"
    delivery = Delivery.objects.select_related("endpoint", "endpoint__owner").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint.paused:
        result = Result(ok=False, error=f"The endpoint is paused: {endpoint.paused_reason}", permanent=True)
    else:
        try:
            result = SENDERS[endpoint.agent](endpoint, delivery)
        except Exception as exc:  # recorded as the attempt's error and logged; it is retried
            log.exception("notification delivery %s: the %s agent failed", delivery_id, endpoint.agent)
            result = Result(ok=False, error=f"{type(exc).__name__}: {exc}")
    return record(delivery, result, now)


def record(delivery: Delivery, result: Result, now: datetime) -> str:
    """Store the attempt and the delivery's new state; queue the retry; pause or disable the endpoint."""
    endpoint = delivery.endpoint
    agent = endpoint.agent
    next_at = None
    if result.ok:
        outcome = Outcome.SENT
    elif result.permanent:
        outcome = Outcome.DEAD
    else:
        delay = retry_delay(delivery.attempt)
        outcome = Outcome.FAILED if delay is not None else Outcome.DEAD
        next_at = now + timedelta(seconds=delay) if delay is not None else None
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempt,
            at=now,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response=result.response[:1024],
            error=result.error[:2000],
        )
        Delivery.objects.filter(pk=delivery.pk).update(
            outcome=outcome,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error[:2000],
            next_attempt_at=next_at,
            leased_until=None,
            queued_at=next_at,
        )
        if next_at is not None:
            queueing.queue_attempt(delivery.pk, not_before=next_at)
        if result.ok:
            if endpoint.failing_since is not None:
                Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        elif result.gone:
            _pause(endpoint, "The endpoint answered 410 Gone: it was disabled.", now)
        elif not endpoint.paused:
            _note_failure(endpoint, now)
    monitoring.counted(agent, outcome)
    if result.latency_ms is not None:
        monitoring.DELIVERY_LATENCY.labels(agent=agent).observe(result.latency_ms / 1000)
    return outcome


def _note_failure(endpoint: Endpoint, now: datetime) -> None:
    Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    since = Endpoint.objects.filter(pk=endpoint.pk).values_list("failing_since", flat=True).first()
    if since is not None and now - since >= PAUSE_AFTER:
        _pause(endpoint, "Every attempt failed for 24 hours: it was paused.", now)


def _pause(endpoint: Endpoint, reason: str, now: datetime) -> None:
    """Pause the endpoint and tell its owner through their email endpoints (never itself)."""
    if not Endpoint.objects.filter(pk=endpoint.pk, paused=False).update(paused=True, paused_reason=reason):
        return
    log.warning("notification endpoint %s paused: %s", endpoint.pk, reason)
    emails = list(
        Endpoint.objects.filter(owner_id=endpoint.owner_id, agent=Agent.EMAIL, paused=False).exclude(pk=endpoint.pk)
    )
    if emails:
        data = {"endpoint": {"id": endpoint.pk, "name": endpoint.name, "agent": endpoint.agent, "reason": reason}}
        outbox.write(emails, EventType.ENDPOINT_PAUSED, f"endpoint:{endpoint.pk}", data, noisy=False)


def redeliver(delivery: Delivery) -> Delivery:
    """Send a delivery again from a fresh set of attempts, with the same webhook-id."""
    now = timezone.now()
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            outcome=Outcome.PENDING, attempt=0, next_attempt_at=now, leased_until=None, queued_at=now, error=""
        )
        queueing.queue_attempt(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def sweep(now: datetime | None = None) -> int:
    """Scheduled every minute on the notify lane: queue again the attempts whose task was lost.

    Lost: a worker died mid-attempt (its lease ran out), or the task was queued long ago and
    never ran (a push after commit that failed with the Redis broker). A task that merely waits
    in a busy lane is left alone, so a backlog does not grow a copy a minute.
    """
    now = now or timezone.now()
    lost = list(
        Delivery.objects.filter(outcome__in=[Outcome.PENDING, Outcome.FAILED], next_attempt_at__lte=now - SWEEP_GRACE)
        .filter(Q(leased_until__lt=now) | Q(leased_until__isnull=True, queued_at__lt=now - REQUEUE_AFTER))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    with transaction.atomic():
        Delivery.objects.filter(pk__in=lost).update(leased_until=None, queued_at=now)
        for delivery_id in lost:
            queueing.queue_attempt(delivery_id)
    return len(lost)


def prune(now: datetime | None = None) -> int:
    """Hourly: deliveries without a job (tests, notices) past the jobs' retention; the others go with their job."""
    days = settings.OFFLOAD_JOB_RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    _, deleted = Delivery.objects.filter(job__isnull=True, created_at__lt=cutoff).delete()
    return deleted.get(Delivery._meta.label, 0)
