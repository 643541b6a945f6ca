from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q, sql
from django.db.models.constants import OnConflict
from django.utils import timezone


class Library(models.Model):
    JOB_TARGET_TYPE = "library"

    name = models.CharField(max_length=200)
    # Stored resolved; offload.lib.paths.resolve_library_path checks it lies inside
    # OFFLOAD_LIBRARY_ROOTS before it is ever saved.
    path = models.CharField(max_length=1024)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="libraries",
        null=True,
        blank=True,
    )
    # Users granted access by staff: they see the library, its items and renditions as the owner does.
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="shared_libraries", blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_scanned_at = models.DateTimeField(null=True, blank=True)
    # How many items the library holds, kept as items come and go (offload.signals) and
    # recounted by each scan: lists show it without counting a library's items on every read.
    item_count = models.IntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "libraries"

    def __str__(self) -> str:
        return self.name

    def recount_items(self) -> int:
        """Count the items again and store the figure (after writes that send no signals)."""
        self.item_count = self.items.count()
        Library.objects.filter(pk=self.pk).update(item_count=self.item_count)
        return self.item_count

    @property
    def root(self) -> Path:
        return Path(self.path)


class MediaKind(models.TextChoices):
    MOVIE = "movie"
    EPISODE = "episode"
    TRACK = "track"
    OTHER = "other"


class MediaStatus(models.TextChoices):
    NEW = "new"
    READY = "ready"
    CORRUPT = "corrupt"
    MISSING = "missing"


class MediaItem(models.Model):
    JOB_TARGET_TYPE = "media"

    library = models.ForeignKey(Library, on_delete=models.CASCADE, related_name="items")
    relative_path = models.CharField(max_length=1024)
    kind = models.CharField(max_length=16, choices=MediaKind.choices, default=MediaKind.OTHER)
    status = models.CharField(max_length=16, choices=MediaStatus.choices, default=MediaStatus.NEW)
    status_reason = models.TextField(blank=True, default="")
    size = models.BigIntegerField(default=0)
    mtime = models.DateTimeField(null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True, default="")

    # Technical metadata, from ffprobe.
    container = models.CharField(max_length=64, blank=True, default="")
    duration = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    bitrate = models.BigIntegerField(null=True, blank=True)
    video_codec = models.CharField(max_length=64, blank=True, default="")
    audio_codec = models.CharField(max_length=64, blank=True, default="")
    audio_channels = models.PositiveSmallIntegerField(null=True, blank=True)
    languages = models.JSONField(default=list, blank=True)
    probe = models.JSONField(null=True, blank=True)
    probed_at = models.DateTimeField(null=True, blank=True)

    # Descriptive metadata.
    title = models.CharField(max_length=500, blank=True, default="")
    original_title = models.CharField(max_length=500, blank=True, default="")
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    overview = models.TextField(blank=True, default="")
    genres = models.JSONField(default=list, blank=True)
    people = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    series_title = models.CharField(max_length=500, blank=True, default="")
    season = models.PositiveSmallIntegerField(null=True, blank=True)
    episode = models.PositiveSmallIntegerField(null=True, blank=True)
    # Names of descriptive fields an operator edited; enrichment never overwrites them.
    locked_fields = models.JSONField(default=list, blank=True)
    # Which provider set each descriptive field: {"title": "nfo", "year": "filename", ...}.
    provenance = models.JSONField(default=dict, blank=True)
    # A digest of everything enrichment read, so unchanged inputs mean no write.
    enrichment_digest = models.CharField(max_length=64, blank=True, default="")
    enriched_at = models.DateTimeField(null=True, blank=True)

    # Thumbnails, relative to MEDIA_ROOT.
    poster = models.CharField(max_length=1024, blank=True, default="")
    sprite = models.CharField(max_length=1024, blank=True, default="")
    sprite_index = models.CharField(max_length=1024, blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    # The fields ffprobe fills, as the API and the admin show them.
    TECHNICAL_FIELDS = (
        "container",
        "duration",
        "width",
        "height",
        "bitrate",
        "video_codec",
        "audio_codec",
        "audio_channels",
        "languages",
        "probed_at",
    )
    DESCRIPTIVE_FIELDS = (
        "title",
        "original_title",
        "year",
        "overview",
        "genres",
        "people",
        "tags",
        "series_title",
        "season",
        "episode",
    )

    class Meta:
        ordering = ["library_id", "relative_path"]
        constraints = [
            models.UniqueConstraint(fields=["library", "relative_path"], name="media_unique_path_per_library"),
        ]
        indexes = [models.Index(fields=["kind"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.title or self.relative_path

    @property
    def absolute_path(self) -> Path:
        return self.library.root / self.relative_path


class Rendition(models.Model):
    """One transcoded output of an item; at most one per (item, profile)."""

    item = models.ForeignKey(MediaItem, on_delete=models.CASCADE, related_name="renditions")
    profile = models.CharField(max_length=64)
    # Relative to MEDIA_ROOT: a file, or an HLS playlist inside its own folder.
    path = models.CharField(max_length=1024)
    size = models.BigIntegerField(default=0)
    duration = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    bitrate = models.BigIntegerField(null=True, blank=True)
    video_codec = models.CharField(max_length=64, blank=True, default="")
    audio_codec = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["item_id", "profile"]
        constraints = [models.UniqueConstraint(fields=["item", "profile"], name="rendition_one_per_profile")]

    def __str__(self) -> str:
        return f"{self.item_id} {self.profile}"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobPriority(models.IntegerChoices):
    # A stage a pipeline queued (a scan's probes): the backlog.
    PIPELINE = 0, "pipeline"
    # A job a person asked for directly (API, admin, command line): runs first in its lane.
    PERSON = 1, "person"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
# The most of ffmpeg's stderr or of a traceback kept on a job row.
JOB_TEXT_LIMIT = 8000
FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobQuerySet(models.QuerySet):
    """The job table's SQL beyond the ORM's verbs, each named for what it does: the spine's transitions call it."""

    def for_attempt(self, job: "Job") -> "JobQuerySet":
        """The job while the attempt that claimed it still holds it: every worker-side change is fenced so."""
        return self.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts)

    def insert_unless_taken(self, job: "Job") -> "Job | None":
        """INSERT the job, or nothing when a unique index already holds its twin (or its key): None then.

        ON CONFLICT DO NOTHING instead of a savepoint around a failing INSERT: two round trips
        fewer on every accepted request, and the transaction stays usable either way.
        """
        fields = [f for f in self.model._meta.concrete_fields if not f.primary_key]
        for field in fields:
            field.pre_save(job, add=True)
        query = sql.InsertQuery(self.model, on_conflict=OnConflict.IGNORE)
        query.insert_values(fields, [job])
        rows = query.get_compiler(using=job._state.db or self.db).execute_sql(returning_fields=[self.model._meta.pk])
        # A conflict inserts nothing and RETURNING answers no row (None where one was expected).
        if not rows or rows[0] is None:
            return None
        job.pk = rows[0][0]
        job._state.adding = False
        job._state.db = job._state.db or self.db
        return job

    def update_returning(self, *, into: "Job | None" = None, **changes: Any) -> "Job | None":
        """A conditional UPDATE of at most one job that hands back the row as it now is.

        One round trip instead of the UPDATE and a SELECT after it (PostgreSQL and SQLite both
        know RETURNING). None when no row matched. into: the caller's instance, given the row's
        values in place (as refresh_from_db would) and returned.
        """
        query = self.query.chain(sql.UpdateQuery)
        query.add_update_values(changes)
        compiler = query.get_compiler(self.db)
        compiler.pre_sql_setup()
        statement, params = compiler.as_sql()
        # raw() maps the returned columns onto a Job and applies each field's converters.
        rows = list(self.model._default_manager.db_manager(self.db).raw(f"{statement} RETURNING *", params))
        if not rows:
            return None
        if into is None:
            return rows[0]
        for field in self.model._meta.concrete_fields:
            setattr(into, field.attname, getattr(rows[0], field.attname))
        return into


class Job(models.Model):
    kind = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(null=True, blank=True)
    # target_type "" and target_id 0 mean "no target", so that such jobs still
    # take part in the unique index below (NULLs would never collide).
    target_type = models.CharField(max_length=32, blank=True, default="")
    target_id = models.BigIntegerField(default=0)
    params = models.JSONField(default=dict, blank=True)
    params_hash = models.CharField(max_length=64)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    error = models.TextField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # When the next attempt became (or becomes) due: the enqueue, a retry, or the end of a
    # backoff. An attempt's queue wait is measured from here, not from created_at.
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set by a cancel request on a running job; the worker polls it between steps.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    task_id = models.CharField(max_length=64, blank=True, default="")
    # Kinds to queue for the same target once this job succeeds (the item pipeline);
    # kept out of params so a pipeline job and a manual one share the dedupe key.
    then = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    # Which queue of its lane the job's task waits in (offload/jobs/lanes.py).
    priority = models.PositiveSmallIntegerField(choices=JobPriority.choices, default=JobPriority.PIPELINE)
    # What the job page shows an operator after the fact: the last lines of ffmpeg's stderr
    # (transcodes, thumbnails) and a failed attempt's traceback. Both are cut to
    # JOB_TEXT_LIMIT characters (their end kept) before they are written.
    log_tail = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    # Someone besides the requester joined the job (offload.access.join_job sets it, under the
    # row's lock). While it is False, an event written with the row's UPDATE … RETURNING knows
    # nobody joined, and announcing it skips the JobMember read.
    has_members = models.BooleanField(default=False)
    # A failure's group (offload.jobs.fingerprints): stored as the job fails, so the failure
    # groups are one GROUP BY over a partial index of failed jobs, not a pass over every reason.
    failure_group = models.CharField(max_length=16, blank=True, default="")
    failure_exception = models.CharField(max_length=64, blank=True, default="")
    failure_message = models.CharField(max_length=200, blank=True, default="")

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # Granted to the operators who may let a throttled client in again (admin, "Cache and rate limits").
        permissions = [("reset_rate_limits", "Can reset a client's rate limits")]
        constraints = [
            # At most one active job per (kind, target, params): the database, not
            # a read-then-write, decides a race between two requests.
            models.UniqueConstraint(
                fields=["kind", "target_type", "target_id", "params_hash"],
                condition=Q(status__in=["queued", "running"]),
                name="job_one_active_per_key",
            ),
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="job_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "kind"]),
            models.Index(fields=["target_type", "target_id"]),
            # The dashboard's throughput and failure groups read recent finishes.
            models.Index(fields=["finished_at"]),
            # The admin's and the API's lists, newest first, whole or by status, kind or owner:
            # each reads one page off an index instead of sorting the table.
            models.Index(fields=["-created_at", "-id"], name="job_newest_first"),
            models.Index(fields=["status", "-created_at", "-id"], name="job_status_newest_first"),
            models.Index(fields=["kind", "-created_at", "-id"], name="job_kind_newest_first"),
            models.Index(fields=["requested_by", "-created_at", "-id"], name="job_owner_newest_first"),
            # Retention deletes the oldest finishes of each status, a batch at a time.
            models.Index(fields=["status", "finished_at"], name="job_status_finished"),
            # The failure groups: a GROUP BY over failed jobs, read from this index alone.
            models.Index(
                fields=["failure_group", "kind", "failure_exception", "failure_message", "finished_at"],
                name="job_failure_groups",
                condition=Q(status="failed"),
            ),
            # Failed jobs stored without their group (from before groups were stored): the
            # dashboard checks for them on every read, and this index is empty once they are done.
            models.Index(
                fields=["id"],
                name="job_failed_unclassified",
                condition=Q(status="failed", failure_group=""),
            ),
            # serves the reaper's scan for running jobs with a stale heartbeat
            models.Index(
                fields=["heartbeat_at"],
                name="job_running_heartbeat",
                condition=Q(status="running"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def target(self) -> dict | None:
        if not self.target_type:
            return None
        return {"type": self.target_type, "id": self.target_id}


class AttemptOutcome(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Failed for a reason that may pass: the job went back to the queue for its next attempt.
    RETRYING = "retrying"
    # Put back without spending an attempt (a busy lock).
    DEFERRED = "deferred"
    # Its worker stopped beating (killed, crashed, its host gone): another attempt took over.
    LOST = "lost"


class JobAttempt(models.Model):
    """One run of a job, kept after the next one starts: when, where, how it ended and why.

    Opened by the claim and closed by whatever ends the attempt, in the same statement or
    transaction as the job's own change (offload/jobs/attempts.py), so history and row agree.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_history")
    # 1, 2, 3 … over the job's whole life: a retry starts a fresh budget (Job.attempts) but
    # goes on numbering here.
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices, default=AttemptOutcome.RUNNING)
    error = models.TextField(blank=True, default="")
    log_tail = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="job_attempt_once")]

    def __str__(self) -> str:
        return f"attempt {self.number} of job {self.job_id}"

    @property
    def worker(self) -> str:
        """host/pid, as the timeline and the Workers panel name a worker process."""
        return f"{self.host}/{self.pid}" if self.host else ""


class JobMember(models.Model):
    """A user who asked for a job already active for someone else, and so joined it."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="joined_jobs")
    # The newest event seq when they joined: their stream holds the job's events after it.
    joined_after_seq = models.BigIntegerField(default=0)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "user"], name="job_member_once")]
        indexes = [models.Index(fields=["user", "job"])]

    def __str__(self) -> str:
        return f"user {self.user_id} in job {self.job_id}"


class JobEvent(models.Model):
    """One job state change, as clients see it. Append-only."""

    # Taken from EventSequence as the inserting transaction commits (a deferred trigger on
    # PostgreSQL, see offload/jobs/events.py), so seqs become visible in order: a client
    # resuming "after N" can never miss an event that commits later with a lower seq.
    # NULL only inside the inserting transaction, before its commit.
    seq = models.BigIntegerField(unique=True, null=True, blank=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="job_events",
    )
    event = models.CharField(max_length=16)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["user", "seq"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.seq} {self.event} job {self.job_id}"


class EventSequence(models.Model):
    """A single counter row handing out JobEvent.seq values."""

    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"event sequence at {self.last_seq}"


class QueueControl(models.Model):
    """An operator's hold on one job kind, shared by every host: paused, and a concurrency cap.

    A kind without a row runs freely. Workers read it when they pick a job up
    (offload/jobs/control.py); nothing is cached, so a change takes effect at once.
    """

    kind = models.CharField(max_length=64, primary_key=True)
    paused = models.BooleanField(default=False)
    # At most this many jobs of the kind run at once across all hosts; null: no cap.
    concurrency = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.kind


class RollupSpan(models.TextChoices):
    MINUTE = "minute"
    HOUR = "hour"


class JobRollup(models.Model):
    """Finished jobs of one minute or hour, per kind and status: what the dashboard's charts read.

    Written by offload.jobs.rollups (a schedule, every minute), so the charts cost the same
    whatever the size of the job table. wait_hist and run_hist count jobs per bucket of
    offload.jobs.rollups.BUCKETS (seconds), from which p50 and p95 are read.
    """

    span = models.CharField(max_length=8, choices=RollupSpan.choices)
    start = models.DateTimeField()
    kind = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=JobStatus.choices)
    finished = models.PositiveIntegerField(default=0)
    wait_hist = models.JSONField(default=list)
    run_hist = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["span", "start", "kind", "status"], name="job_rollup_one_per_bucket"),
        ]
        # The charts read one span over a window: (span, start) serves the range scan.
        indexes = [models.Index(fields=["span", "start"])]

    def __str__(self) -> str:
        return f"{self.span} {self.start:%Y-%m-%d %H:%M} {self.kind} {self.status}: {self.finished}"


class QueueSample(models.Model):
    """How many jobs of a kind were queued and running at one minute: the queue-depth chart."""

    at = models.DateTimeField()
    kind = models.CharField(max_length=64)
    queued = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["at", "kind"], name="queue_sample_one_per_minute")]
        indexes = [models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}: {self.queued} queued, {self.running} running"


class RollupWatermark(models.Model):
    """A single row: every finish before `rolled_up_to` is in JobRollup."""

    rolled_up_to = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rolled up to {self.rolled_up_to}"
