"""The notifications API: a person's endpoints, a test, their deliveries, a redelivery. Thin views."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from offload.alerts import endpoints
from offload.alerts.models import SUBSCRIBABLE, Delivery, Endpoint
from offload.api.pagination import PageNumbers
from offload.api.permissions import RulePermission
from offload.permissions import CHANGE_ENDPOINT


class EndpointSerializer(serializers.ModelSerializer):
    """An endpoint as its owner reads it: secrets masked, never shown again."""

    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE), allow_empty=False)
    kinds = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    libraries = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False)
    options = serializers.DictField(required=False)
    # Given for Gotify (its app token) and ntfy (an access token); stored as the endpoint's secret.
    token = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=512)
    secret = serializers.SerializerMethodField()
    url = serializers.CharField(max_length=2048, required=False, allow_blank=True)

    class Meta:
        model = Endpoint
        fields = [
            "id", "agent", "name", "url", "to", "events", "kinds", "libraries", "options", "token", "secret",
            "paused", "paused_reason", "failing_since", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "paused_reason", "failing_since", "created_at"]

    def get_secret(self, endpoint: Endpoint) -> str:
        shown = self.context.get("secret_once")
        return shown or endpoints.masked(endpoint.secret)

    def to_fields(self) -> dict:
        data = dict(self.validated_data)
        # An empty token keeps the one stored.
        token = data.pop("token", "")
        if token:
            data["secret"] = token
        return data


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id", "event", "webhook_id", "attempt", "outcome", "status_code", "latency_ms", "error",
            "next_attempt_at", "created_at",
        ]  # fmt: skip


def _endpoint(request: Request, pk) -> Endpoint:
    try:
        return endpoints.get_endpoint_for_user(request.user, pk)
    except endpoints.EndpointNotFound:
        raise NotFound("No such endpoint.") from None


def _apply(call):
    try:
        return call()
    except ValueError as exc:
        raise ValidationError({"detail": str(exc)}) from None


class EndpointListView(APIView):
    permission_classes = [IsAuthenticated, RulePermission]
    permission_rules = {"post": CHANGE_ENDPOINT}

    @extend_schema(responses={200: EndpointSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = endpoints.endpoints_for(request.user).order_by("id")
        return Response(EndpointSerializer(rows, many=True).data)

    @extend_schema(request=EndpointSerializer, responses={201: EndpointSerializer, 400: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        given = EndpointSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        endpoint, secret = _apply(lambda: endpoints.create_endpoint(request.user, given.to_fields()))
        return Response(
            EndpointSerializer(endpoint, context={"secret_once": secret}).data, status=status.HTTP_201_CREATED
        )


class EndpointDetailView(APIView):
    permission_classes = [IsAuthenticated, RulePermission]
    permission_rules = {"patch": CHANGE_ENDPOINT, "delete": CHANGE_ENDPOINT}

    @extend_schema(responses={200: EndpointSerializer, 404: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        return Response(EndpointSerializer(_endpoint(request, pk)).data)

    @extend_schema(request=EndpointSerializer, responses={200: EndpointSerializer, 400: OpenApiTypes.OBJECT})
    def patch(self, request: Request, pk: int) -> Response:
        endpoint = _endpoint(request, pk)
        given = EndpointSerializer(endpoint, data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        endpoint = _apply(lambda: endpoints.update_endpoint(request.user, endpoint, given.to_fields()))
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None, 404: OpenApiTypes.OBJECT})
    def delete(self, request: Request, pk: int) -> Response:
        _endpoint(request, pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointTestView(APIView):
    permission_classes = [IsAuthenticated, RulePermission]
    permission_rules = {"post": CHANGE_ENDPOINT}

    @extend_schema(request=None, responses={202: DeliverySerializer, 404: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        row = endpoints.send_test(_endpoint(request, pk))
        return Response(DeliverySerializer(row).data, status=status.HTTP_202_ACCEPTED)


class EndpointRotateSecretView(APIView):
    permission_classes = [IsAuthenticated, RulePermission]
    permission_rules = {"post": CHANGE_ENDPOINT}

    @extend_schema(request=None, responses={200: EndpointSerializer, 400: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        endpoint = _endpoint(request, pk)
        secret = _apply(lambda: endpoints.rotate_secret(endpoint))
        return Response(EndpointSerializer(endpoint, context={"secret_once": secret}).data)


class DeliveryPagination(PageNumbers):
    page_size = 50


@extend_schema(responses={200: DeliverySerializer(many=True), 404: OpenApiTypes.OBJECT})
class DeliveryListView(generics.ListAPIView):
    serializer_class = DeliverySerializer
    pagination_class = DeliveryPagination
    queryset = Delivery.objects.none()  # for the schema; get_queryset applies access

    def get_queryset(self):
        return _endpoint(self.request, self.kwargs["pk"]).deliveries.order_by("-created_at", "-id")


class RedeliverView(APIView):
    permission_classes = [IsAuthenticated, RulePermission]
    permission_rules = {"post": CHANGE_ENDPOINT}

    @extend_schema(request=None, responses={202: DeliverySerializer, 404: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int, delivery_pk: int) -> Response:
        try:
            row = endpoints.get_delivery_for_user(request.user, pk, delivery_pk)
        except endpoints.EndpointNotFound:
            raise NotFound("No such delivery.") from None
        return Response(DeliverySerializer(endpoints.redeliver(row)).data, status=status.HTTP_202_ACCEPTED)
