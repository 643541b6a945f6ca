"""Thin API views: parse, check access, call one action, serialize."""

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from offload import access, actions
from offload.api.caching import cached_get
from offload.api.serializers import (
    DescriptiveSerializer,
    JobSerializer,
    LibrarySerializer,
    MediaDetailSerializer,
    MediaListSerializer,
    ProfileSerializer,
    TranscodeRequestSerializer,
)
from offload.kinds import KINDS
from offload.models import Job, JobStatus, Library, MediaItem, MediaKind
from offload.profiles import PROFILES

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The same key from the same user within 24 h answers the same job.",
)
JOB_RESPONSES = {
    202: JobSerializer,
    200: JobSerializer,
    # An Idempotency-Key the user already sent with a different request (offload.api.errors).
    422: inline_serializer("IdempotencyKeyReused", {"detail": serializers.CharField()}),
}


def job_response(job, created: bool) -> Response:
    """202 with a Location for a new job; 200 for the job already active or replayed."""
    data = JobSerializer(job).data
    if not created:
        return Response(data, status=status.HTTP_200_OK)
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


def idempotency_key(request: Request) -> str:
    return request.headers.get("Idempotency-Key", "")


class CachedReadMixin:
    """GET list and detail answers come from the per-user API cache (offload/api/caching.py)."""

    cache_namespaces: tuple[str, ...] = ()

    def list(self, request, *args, **kwargs):
        compute = lambda: super(CachedReadMixin, self).list(request, *args, **kwargs)  # noqa: E731
        return cached_get(request, self.cache_namespaces, compute, expensive=True)

    def retrieve(self, request, *args, **kwargs):
        compute = lambda: super(CachedReadMixin, self).retrieve(request, *args, **kwargs)  # noqa: E731
        return cached_get(request, self.cache_namespaces, compute)


class LibraryViewSet(
    CachedReadMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = LibrarySerializer
    cache_namespaces = ("libraries",)
    queryset = Library.objects.none()  # for the schema; get_queryset applies access

    def get_queryset(self):
        return access.libraries_for(self.request.user).annotate(item_count=Count("items")).order_by("name", "id")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = actions.create_library(self.request.user, data["name"], data["path"])

    @extend_schema(request=None, responses=JOB_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"])
    def scan(self, request: Request, pk=None) -> Response:
        library = access.get_library_for_user(request.user, pk)
        return job_response(*actions.request_scan(request.user, library, idempotency_key(request)))


class MediaViewSet(
    CachedReadMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    http_method_names = ["get", "patch", "post", "head", "options"]
    queryset = MediaItem.objects.none()  # for the schema; get_queryset applies access
    cache_namespaces = ("media",)

    def get_serializer_class(self):
        if self.action == "list":
            return MediaListSerializer
        if self.action == "partial_update":
            return DescriptiveSerializer
        return MediaDetailSerializer

    def get_queryset(self):
        qs = access.media_for(self.request.user)
        params = self.request.query_params
        if params.get("kind"):
            qs = qs.filter(kind=params["kind"])
        if params.get("library"):
            library = params["library"]
            qs = qs.filter(library_id=int(library)) if library.isdigit() else qs.none()
        if params.get("q"):
            qs = qs.filter(title__icontains=params["q"]) | qs.filter(relative_path__icontains=params["q"])
        return qs

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, enum=MediaKind.values),
            OpenApiParameter("library", OpenApiTypes.INT),
            OpenApiParameter("q", OpenApiTypes.STR),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=DescriptiveSerializer, responses=MediaDetailSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        item = access.get_item_for_user(request.user, pk)
        serializer = DescriptiveSerializer(item, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        item = actions.edit_item(request.user, item, serializer.validated_data)
        return Response(MediaDetailSerializer(item).data)

    @extend_schema(request=None, responses=JOB_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"])
    def probe(self, request: Request, pk=None) -> Response:
        item = access.get_item_for_user(request.user, pk)
        return job_response(*actions.request_probe(request.user, item, idempotency_key(request)))

    @extend_schema(request=None, responses=JOB_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"])
    def enrich(self, request: Request, pk=None) -> Response:
        item = access.get_item_for_user(request.user, pk)
        return job_response(*actions.request_enrich(request.user, item, idempotency_key(request)))

    @extend_schema(request=None, responses=JOB_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"])
    def thumbnail(self, request: Request, pk=None) -> Response:
        item = access.get_item_for_user(request.user, pk)
        return job_response(*actions.request_thumbnail(request.user, item, idempotency_key(request)))

    @extend_schema(request=TranscodeRequestSerializer, responses=JOB_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"])
    def transcode(self, request: Request, pk=None) -> Response:
        item = access.get_item_for_user(request.user, pk)
        body = TranscodeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job, created = actions.request_transcode(
            request.user, item, body.validated_data["profile"], idempotency_key(request)
        )
        return job_response(job, created)


class ProfileListView(APIView):
    """The transcode profiles and their settings."""

    @extend_schema(responses=ProfileSerializer(many=True))
    def get(self, request: Request) -> Response:
        # Static: no namespace to invalidate, but clients still get an ETag and 304s.
        return cached_get(request, [], lambda: Response([profile.as_dict() for profile in PROFILES.values()]))


class JobViewSet(CachedReadMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    queryset = Job.objects.none()  # for the schema; get_queryset applies access
    cache_namespaces = ("jobs",)

    def get_queryset(self):
        qs = access.jobs_for(self.request.user)
        params = self.request.query_params
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        if params.get("kind"):
            qs = qs.filter(kind=params["kind"])
        return qs.order_by("-created_at", "-id")

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=JobStatus.values),
            OpenApiParameter("kind", OpenApiTypes.STR, enum=list(KINDS)),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=None,
        responses={
            200: JobSerializer,
            202: JobSerializer,
            409: inline_serializer("Conflict", {"detail": serializers.CharField()}),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        job = actions.cancel_job(request.user, access.get_job_for_user(request.user, pk))
        # A running job stops when its worker sees the request: 202, the stop is under way.
        code = status.HTTP_200_OK if job.is_finished else status.HTTP_202_ACCEPTED
        return Response(JobSerializer(job).data, status=code)

    @extend_schema(
        request=None,
        responses={202: JobSerializer, 409: inline_serializer("RetryConflict", {"detail": serializers.CharField()})},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk=None) -> Response:
        job = actions.retry_job(request.user, access.get_job_for_user(request.user, pk))
        data = JobSerializer(job).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})
