"""Endpoints people subscribe to events, and the outbox of deliveries to them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from offload.models import Job


class Agent(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    NTFY = "ntfy", "ntfy"
    GOTIFY = "gotify", "Gotify"
    DISCORD = "discord", "Discord"
    EMAIL = "email", "Email"


class EventType(models.TextChoices):
    JOB_SUCCEEDED = "job.succeeded", "job.succeeded"
    JOB_FAILED = "job.failed", "job.failed"
    JOB_CANCELLED = "job.cancelled", "job.cancelled"
    SCAN_FINISHED = "scan.finished", "scan.finished"
    # Sent by "send a test"; nobody subscribes to it.
    TEST = "test", "test"
    # Told to the owner's email endpoints when one of their endpoints was paused for failing.
    ENDPOINT_PAUSED = "endpoint.paused", "endpoint.paused"


# What a person may subscribe an endpoint to.
SUBSCRIBABLE = [
    EventType.JOB_SUCCEEDED.value,
    EventType.JOB_FAILED.value,
    EventType.JOB_CANCELLED.value,
    EventType.SCAN_FINISHED.value,
]


class Outcome(models.TextChoices):
    # Waiting for its first attempt.
    PENDING = "pending"
    SENT = "sent"
    # The last attempt failed; the next one is due at next_attempt_at.
    FAILED = "failed"
    # No attempt is left (or the endpoint refused it for good): "redeliver" starts again.
    DEAD = "dead"
    # Over the owner's hourly limit for the agent: recorded, never sent.
    LIMITED = "limited"
    # The same endpoint, event and target within the dedupe window: recorded, never sent.
    DEDUPED = "deduped"


class Endpoint(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notify_endpoints")
    name = models.CharField(max_length=200)
    agent = models.CharField(max_length=16, choices=Agent.choices)
    # Webhook, ntfy topic, Gotify server or Discord webhook URL; empty for email.
    url = models.URLField(max_length=2048, blank=True, default="")
    # Email: the address notifications go to.
    to = models.EmailField(blank=True, default="")
    events = models.JSONField(default=list)
    # Job kinds and library ids to notify about; empty lists mean all of them.
    kinds = models.JSONField(default=list, blank=True)
    libraries = models.JSONField(default=list, blank=True)
    # The agent's own settings (ntfy priority and tags, …); secrets live in `secret`.
    options = models.JSONField(default=dict, blank=True)
    # The webhook's signing secret (whsec_…), the Gotify app token or the ntfy access token.
    # Shown once when set, never again.
    secret = models.CharField(max_length=512, blank=True, default="")
    # After a rotation the old signing secret stays valid (both signatures are sent) until then.
    previous_secret = models.CharField(max_length=512, blank=True, default="")
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    paused_reason = models.CharField(max_length=200, blank=True, default="")
    # Since when every attempt has failed; cleared by a success. After a day the endpoint is paused.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["owner_id", "name", "id"]
        indexes = [models.Index(fields=["owner", "paused"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_agent_display()})"

    @property
    def address(self) -> str:
        """Where it delivers: the URL, or the email address."""
        return self.to if self.agent == Agent.EMAIL else self.url


class Delivery(models.Model):
    """One notification to one endpoint: the outbox row, written with the event that caused it."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    # Pruned with its job (retention as for jobs); tests and notices have none.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries")
    event = models.CharField(max_length=32, choices=EventType.choices)
    # "<type>:<id>" of what the event is about: duplicates are the same endpoint, event and target.
    target = models.CharField(max_length=64, blank=True, default="")
    # The same on every attempt: receivers dedupe on it.
    webhook_id = models.CharField(max_length=64, unique=True)
    payload = models.JSONField()
    attempt = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Taken by the worker making an attempt; a worker that died leaves it to expire.
    leased_until = models.DateTimeField(null=True, blank=True)
    # When its attempt's task was last queued: the sweep queues it again only once that is long past.
    queued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["endpoint", "-created_at"]),
            # Duplicates and the hourly limits look back from the newest rows.
            models.Index(fields=["endpoint", "event", "target", "-created_at"], name="delivery_dedupe"),
            # The sweep's query: what is due.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=Q(outcome__in=["pending", "failed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint.name} ({self.outcome})"


class DeliveryAttempt(models.Model):
    """One try of a delivery, kept to be read: when, the answer's status and first 1 KB, the error."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # The first 1 KB of the answer, as text; never rendered as HTML.
    response = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"attempt {self.number}"
