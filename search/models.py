from django.db import models
from django.db.models import Q
from django.utils import timezone


class PendingSync(models.Model):
    """The outbox: an item whose search document must be written (or deleted).

    Written in the same transaction as the change, so a crash or a worker restart never
    loses a write; the sync task deletes the row only once Typesense accepted the document.
    """

    item_id = models.BigIntegerField(unique=True)
    # A new random value on every mark: the sync deletes the row only when the token is
    # still the one it read, so a change made while it was indexing is indexed again.
    token = models.BigIntegerField()
    # The oldest change not yet indexed (the lag is measured from it) and the latest one.
    enqueued_at = models.DateTimeField(default=timezone.now)
    marked_at = models.DateTimeField(default=timezone.now)
    # A claim's lease, then after a failure the earliest retry: the row is not claimable before.
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["enqueued_at", "item_id"]
        # serves the sync's claim query (oldest claimable rows first)
        indexes = [models.Index(fields=["enqueued_at"], name="search_pending_enqueued")]
        verbose_name = "pending index write"

    def __str__(self) -> str:
        return f"item {self.item_id}"


class BuildStatus(models.TextChoices):
    BUILDING = "building"
    LIVE = "live"
    REPLACED = "replaced"
    FAILED = "failed"


class IndexBuild(models.Model):
    """One collection built by a reindex; at most one is being built at a time."""

    collection = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=BuildStatus.choices, default=BuildStatus.BUILDING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A build whose heartbeat stopped lost its process; the next reindex takes over.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    documents = models.PositiveIntegerField(default=0)
    replayed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status="building"),
                name="search_one_build_at_a_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.collection} ({self.status})"


class BuildReplay(models.Model):
    """An item written while a build ran; the build indexes it again before the alias swap."""

    build = models.ForeignKey(IndexBuild, on_delete=models.CASCADE, related_name="replays")
    item_id = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["build", "item_id"], name="search_replay_once_per_build")]

    def __str__(self) -> str:
        return f"item {self.item_id} in {self.build_id}"
