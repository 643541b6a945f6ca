from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from offload.jobs import control, payload, waiting
from offload.lib.outputs import url_for
from offload.models import Job, JobStatus, Library, MediaItem, Rendition


class LibrarySerializer(serializers.ModelSerializer):
    item_count = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = Library
        fields = ["id", "name", "path", "owner", "members", "created_at", "last_scanned_at", "item_count"]
        read_only_fields = ["id", "owner", "members", "created_at", "last_scanned_at", "item_count"]
        extra_kwargs = {"name": {"max_length": 200}, "path": {"max_length": 1024}}


class LibraryUpdateSerializer(serializers.Serializer):
    """What staff may change on a library: its name and its members (user ids)."""

    name = serializers.CharField(max_length=200, required=False)
    members = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**31 - 1), required=False, max_length=1000
    )

    def validate_members(self, ids: list[int]) -> list[int]:
        found = set(get_user_model().objects.filter(pk__in=ids, is_active=True).values_list("pk", flat=True))
        unknown = sorted(set(ids) - found)
        if unknown:
            raise serializers.ValidationError(f"No such active users: {', '.join(map(str, unknown[:20]))}.")
        return sorted(found)


class JobTargetSerializer(serializers.Serializer):
    type = serializers.CharField()
    id = serializers.IntegerField()


class JobListSerializer(serializers.ListSerializer):
    """A page of jobs: their kinds' holds are read once for the page, not once per job."""

    def to_representation(self, data) -> list[dict[str, Any]]:
        jobs = list(data.all() if hasattr(data, "all") else data)
        holds = waiting.Holds(job.kind for job in jobs if job.status == JobStatus.QUEUED)
        for job in jobs:
            job.holds = holds
        return super().to_representation(jobs)


class JobSerializer(serializers.ModelSerializer):
    """The job JSON of docs/api.md, as offload.jobs.payload defines it; the fields below type it for the schema."""

    target = JobTargetSerializer(allow_null=True, read_only=True)
    url = serializers.CharField(read_only=True)
    params = serializers.DictField(read_only=True)
    result = serializers.JSONField(read_only=True, allow_null=True)
    # REST answers only: it depends on operators' holds, not on the job's row alone.
    waiting_reason = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [*payload.FIELDS, "waiting_reason"]
        read_only_fields = fields
        list_serializer_class = JobListSerializer

    def to_representation(self, instance: Job) -> dict[str, Any]:
        return {**payload.job_payload(instance), "waiting_reason": waiting.waiting_reason(instance)}


class MediaListSerializer(serializers.ModelSerializer):
    class Meta:
        model = MediaItem
        fields = [
            "id",
            "library",
            "relative_path",
            "kind",
            "status",
            "title",
            "year",
            "duration",
            "width",
            "height",
            "size",
            "updated_at",
        ]
        read_only_fields = fields


class TechnicalSerializer(serializers.ModelSerializer):
    class Meta:
        model = MediaItem
        fields = list(MediaItem.TECHNICAL_FIELDS)
        read_only_fields = fields


class DescriptiveSerializer(serializers.ModelSerializer):
    genres = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50)
    people = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=200)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=100)
    year = serializers.IntegerField(min_value=1800, max_value=2200, allow_null=True, required=False)
    season = serializers.IntegerField(min_value=0, max_value=9999, allow_null=True, required=False)
    episode = serializers.IntegerField(min_value=0, max_value=9999, allow_null=True, required=False)

    class Meta:
        model = MediaItem
        fields = list(MediaItem.DESCRIPTIVE_FIELDS)


class RenditionSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Rendition
        fields = [
            "id", "profile", "url", "path", "size", "duration", "width", "height", "bitrate",
            "video_codec", "audio_codec", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_url(self, rendition: Rendition) -> str:
        return url_for(rendition.path)


class ThumbnailsSerializer(serializers.Serializer):
    poster = serializers.CharField(allow_null=True)
    sprite = serializers.CharField(allow_null=True)
    sprite_index = serializers.CharField(allow_null=True)


class MediaDetailSerializer(serializers.ModelSerializer):
    technical = serializers.SerializerMethodField()
    metadata = serializers.SerializerMethodField()
    # Which provider (or "user") set each descriptive field.
    provenance = serializers.DictField(child=serializers.CharField(), read_only=True)
    renditions = RenditionSerializer(many=True, read_only=True)
    thumbnails = serializers.SerializerMethodField()

    class Meta:
        model = MediaItem
        fields = [
            "id",
            "library",
            "relative_path",
            "kind",
            "status",
            "status_reason",
            "size",
            "mtime",
            "fingerprint",
            "technical",
            "metadata",
            "locked_fields",
            "provenance",
            "renditions",
            "thumbnails",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(TechnicalSerializer)
    def get_technical(self, item: MediaItem) -> dict[str, Any]:
        return TechnicalSerializer(item).data

    @extend_schema_field(DescriptiveSerializer)
    def get_metadata(self, item: MediaItem) -> dict[str, Any]:
        return DescriptiveSerializer(item).data

    @extend_schema_field(ThumbnailsSerializer)
    def get_thumbnails(self, item: MediaItem) -> dict[str, str | None]:
        return {name: url_for(getattr(item, name)) or None for name in ("poster", "sprite", "sprite_index")}


class ProfileSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.CharField()
    container = serializers.CharField()
    extension = serializers.CharField()
    height = serializers.IntegerField(allow_null=True)
    video_codec = serializers.CharField()
    crf = serializers.IntegerField()
    preset = serializers.CharField()
    maxrate = serializers.CharField()
    audio_codec = serializers.CharField()
    audio_bitrate = serializers.CharField()
    audio_channels = serializers.IntegerField()
    segment_seconds = serializers.IntegerField()
    upscale_rule = serializers.CharField()


class QueueSerializer(serializers.Serializer):
    """One job kind's queue: its lane, holds, figures and drain forecast."""

    kind = serializers.CharField()
    lane = serializers.CharField()
    paused = serializers.BooleanField()
    concurrency = serializers.IntegerField(allow_null=True)
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    oldest_queued_seconds = serializers.FloatField(allow_null=True)
    finished_last_15m = serializers.IntegerField()
    drain_seconds = serializers.FloatField(allow_null=True)


class QueueCapSerializer(serializers.Serializer):
    # Bounded by the column: a larger number answers 400, never a database error.
    concurrency = serializers.IntegerField(min_value=1, max_value=control.max_concurrency(), allow_null=True)
