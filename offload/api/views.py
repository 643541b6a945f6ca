"""Thin API views: parse, check access, call one action, serialize."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from offload import access, actions
from offload import permissions as rules
from offload.api.caching import cached_get
from offload.api.filters import JobFilter, MediaFilter
from offload.api.pagination import JobCursorPagination
from offload.api.permissions import RulePermission
from offload.api.serializers import (
    DescriptiveSerializer,
    JobSerializer,
    LibrarySerializer,
    LibraryUpdateSerializer,
    MediaDetailSerializer,
    MediaListSerializer,
    ProfileSerializer,
    QueueCapSerializer,
    QueueSerializer,
)
from offload.jobs import UnknownJobKind, kinds, queue_row, queue_rows
from offload.models import Job, Library, MediaItem
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


# Any key up to this size is honoured whole (long ones are stored as their digest); past it, 400.
MAX_IDEMPOTENCY_KEY = 4096


def idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationError({"detail": f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters."})
    return key


def params_serializer(kind: kinds.JobKind) -> type[serializers.Serializer] | None:
    """The request body a kind's params make, for validation and the schema."""
    if not kind.params:
        return None
    fields = {
        choice.name: serializers.ChoiceField(choices=list(choice.choices()), help_text=choice.help_text)
        for choice in kind.params
    }
    name = "".join(part.capitalize() for part in kind.name.replace(".", "_").split("_")) + "Request"
    return type(name, (serializers.Serializer,), fields)


def job_action(kind: kinds.JobKind):
    """POST /<targets>/{id}/<kind.action>/: 202 with a new job, 200 with the identical active one."""
    body = params_serializer(kind)

    def request_kind(self, request: Request, pk=None) -> Response:
        params = {}
        if body is not None:
            # Checked against the target first: someone else's target answers 404 (or 403) whatever the body.
            self.check_object_permissions(request, access.get_target_for_user(request.user, kind.target_type, pk))
            given = body(data=request.data)
            given.is_valid(raise_exception=True)
            params = given.validated_data
        try:
            job, created = actions.request_job_on(request.user, kind.name, pk, params, idempotency_key(request))
        except ValueError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return job_response(job, created)

    request_kind.__name__ = kind.action
    # Checked by actions.request_job_on, on the target it fetches (or in the one statement that queues).
    request_kind.permission_rule = rules.REQUEST_JOB
    # The rate limiter counts a request to this view against the kind's scope.
    request_kind.rate_limit_scope = kind.rate_limit
    routed = action(detail=True, methods=["post"], url_path=kind.action, url_name=kind.action)(request_kind)
    # Outermost, as on a hand-written action: drf-spectacular reads it off the routed method.
    return extend_schema(
        request=body,
        responses=JOB_RESPONSES,
        parameters=[IDEMPOTENCY_HEADER],
        summary=f"Queue a {kind.name} job",
    )(routed)


def with_job_actions(viewset: type, target_type: str) -> type:
    """The viewset with one POST action per kind registered on its target type, each with its rule."""
    extra = {kind.action: job_action(kind) for kind in kinds.requestable(target_type)}
    permission_rules = {**viewset.permission_rules, **{name: fn.permission_rule for name, fn in extra.items()}}
    return type(
        viewset.__name__,
        (viewset,),
        {**extra, "permission_rules": permission_rules, "__module__": viewset.__module__},
    )


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
    http_method_names = ["get", "post", "patch", "head", "options"]
    serializer_class = LibrarySerializer
    cache_namespaces = ("libraries",)
    permission_classes = [permissions.IsAuthenticated, RulePermission]
    permission_rules = {"create": rules.CREATE_LIBRARY, "partial_update": rules.CHANGE_LIBRARY}
    queryset = Library.objects.none()  # for the schema; get_queryset applies access

    def get_queryset(self):
        return access.libraries_for(self.request.user).prefetch_related("members").order_by("name", "id")

    # Refused (RulePermission) before the body is read: a user who may not create learns nothing from validation.
    @extend_schema(responses={201: LibrarySerializer, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT})
    def create(self, request: Request, *args, **kwargs) -> Response:
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = actions.create_library(self.request.user, data["name"], data["path"])

    @extend_schema(
        request=LibraryUpdateSerializer,
        responses={
            200: LibrarySerializer,
            400: OpenApiTypes.OBJECT,
            403: OpenApiTypes.OBJECT,
            404: OpenApiTypes.OBJECT,
        },
    )
    def partial_update(self, request: Request, pk=None) -> Response:
        library = access.get_library_for_user(request.user, pk)
        self.check_object_permissions(request, library)
        given = LibraryUpdateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        library = actions.update_library(request.user, library, given.validated_data)
        return Response(LibrarySerializer(self.get_queryset().get(pk=library.pk)).data)


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
    permission_classes = [permissions.IsAuthenticated, RulePermission]
    permission_rules = {"partial_update": rules.EDIT_ITEM}
    filter_backends = [DjangoFilterBackend]
    filterset_class = MediaFilter

    def get_serializer_class(self):
        if self.action == "list":
            return MediaListSerializer
        if self.action == "partial_update":
            return DescriptiveSerializer
        return MediaDetailSerializer

    def get_queryset(self):
        return access.media_for(self.request.user)

    @extend_schema(request=DescriptiveSerializer, responses=MediaDetailSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        item = access.get_item_for_user(request.user, pk)
        self.check_object_permissions(request, item)
        serializer = DescriptiveSerializer(item, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        item = actions.edit_item(request.user, item, serializer.validated_data)
        return Response(MediaDetailSerializer(item).data)


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
    filter_backends = [DjangoFilterBackend]
    filterset_class = JobFilter
    pagination_class = JobCursorPagination
    permission_classes = [permissions.IsAuthenticated, RulePermission]
    permission_rules = {"cancel": rules.ACT_ON_JOB, "retry": rules.ACT_ON_JOB}

    def get_queryset(self):
        return access.jobs_for(self.request.user).order_by("-created_at", "-id")

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
        job = access.get_job_for_user(request.user, pk)
        if access.is_joiner(request.user, job) and not rules.ACT_ON_JOB.allows(request.user, job):
            # A joiner withdraws their interest alone: the job runs on for the others.
            job = actions.leave_job(request.user, job)
            return Response({**JobSerializer(job).data, "left": True}, status=status.HTTP_202_ACCEPTED)
        self.check_object_permissions(request, job)
        job = actions.cancel_job(request.user, job)
        # A running job stops when its worker sees the request: 202, the stop is under way.
        code = status.HTTP_200_OK if job.is_finished else status.HTTP_202_ACCEPTED
        return Response(JobSerializer(job).data, status=code)

    @extend_schema(
        request=None,
        responses={202: JobSerializer, 409: inline_serializer("RetryConflict", {"detail": serializers.CharField()})},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk=None) -> Response:
        job = access.get_job_for_user(request.user, pk)
        # A joiner may leave, never run the requester's job again for everyone.
        self.check_object_permissions(request, job)
        job = actions.retry_job(request.user, job)
        data = JobSerializer(job).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})

    # A retry queues the job again: it counts as a job-creating request.
    retry.rate_limit_scope = "jobs_user"


def registered_kind(kind: str) -> str:
    """The kind named in the URL, or 404."""
    try:
        return kinds.get_kind(kind).name
    except UnknownJobKind:
        raise NotFound(f"No job kind {kind!r}.") from None


class QueueListView(APIView):
    """Staff: one row per job kind, with its lane, holds, figures and drain forecast."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses=QueueSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(QueueSerializer(queue_rows(), many=True).data)


class QueueDetailView(APIView):
    """Staff: set a kind's concurrency cap across all hosts (null for none)."""

    permission_classes = [permissions.IsAdminUser, RulePermission]
    permission_rules = {"patch": rules.STEER_QUEUES}

    @extend_schema(request=QueueCapSerializer, responses=QueueSerializer)
    def patch(self, request: Request, kind: str) -> Response:
        kind = registered_kind(kind)
        given = QueueCapSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        actions.cap_kind(request.user, kind, given.validated_data["concurrency"])
        return Response(QueueSerializer(queue_row(kind)).data)


class QueuePauseView(APIView):
    """Staff: pause a kind; its new jobs are accepted and wait, running ones finish."""

    permission_classes = [permissions.IsAdminUser, RulePermission]
    permission_rules = {"post": rules.STEER_QUEUES}

    @extend_schema(request=None, responses=QueueSerializer)
    def post(self, request: Request, kind: str) -> Response:
        kind = registered_kind(kind)
        actions.pause_kind(request.user, kind)
        return Response(QueueSerializer(queue_row(kind)).data)


class QueueResumeView(APIView):
    """Staff: resume a paused kind; its waiting jobs start in queue order."""

    permission_classes = [permissions.IsAdminUser, RulePermission]
    permission_rules = {"post": rules.STEER_QUEUES}

    @extend_schema(request=None, responses=QueueSerializer)
    def post(self, request: Request, kind: str) -> Response:
        kind = registered_kind(kind)
        actions.resume_kind(request.user, kind)
        return Response(QueueSerializer(queue_row(kind)).data)
