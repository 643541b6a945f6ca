"""The notifications API: a person's endpoints, a test, their deliveries, a redelivery. Thin views."""

import re
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from offload.alerts import endpoints
from offload.alerts.models import SUBSCRIBABLE, Agent, Delivery, Endpoint
from offload.api.pagination import PageNumbers
from offload.api.permissions import RulePermission
from offload.api.schema import OffloadAutoSchema
from offload.jobs import kinds
from offload.permissions import CHANGE_ENDPOINT

URL_HELP = (
    "http or https. An IP address written in the URL (or `localhost`) must be one the address rules "
    "allow: loopback and private ranges only with OFFLOAD_NOTIFY_ALLOW_PRIVATE, link-local, cloud "
    "metadata, multicast and unspecified addresses never (400). A host name is resolved and checked "
    "at every attempt instead."
)
LIBRARIES_HELP = "Ids of libraries you can see; [] for all."
SMTP_PASSWORD_HELP = "Write only: an email endpoint's SMTP password, for its own smtp_host. Other agents take none."  # noqa: S105 (help text)
TOKEN_HELP = "Write only: the Gotify application token (required) or an ntfy access token. Other agents take none."  # noqa: S105 (help text, not a secret)


def ecma(pattern: re.Pattern) -> str:
    """A Python pattern anchored with \\A and \\Z, in ECMA-262's spelling (the schema's)."""
    return pattern.pattern.replace("\\A", "^").replace("\\Z", "$")


def options_schema(agent: str) -> dict[str, Any]:
    """An agent's options as JSON Schema, from the rules endpoints.clean applies."""
    shapes: dict[str, dict[str, Any]] = {
        "tags": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": endpoints.TAG_LENGTH, "pattern": "^[^\\u0000]*$"},
        },
        "smtp_host": {
            "type": "string",
            "maxLength": endpoints.SMTP_HOST_LENGTH,
            "pattern": ecma(endpoints.SMTP_HOST_PATTERN),
            "description": "The endpoint's own SMTP server (a host name or an IPv4 address, under the url's "
            "address rules); without it the server's EMAIL_HOST… settings apply and the other smtp_ options "
            "are not used.",
        },
        "smtp_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "smtp_username": {"type": "string", "maxLength": endpoints.SMTP_USERNAME_LENGTH, "pattern": "^[^\\u0000]*$"},
        "smtp_tls": {"type": "string", "enum": list(endpoints.SMTP_TLS)},
    }
    if agent in endpoints.PRIORITIES:
        span = endpoints.PRIORITIES[agent]
        shapes["priority"] = {"type": "integer", "minimum": span.start, "maximum": span.stop - 1}
    properties = {name: shapes[name] for name in endpoints.OPTIONS.get(agent, ())}
    return {"type": "object", "properties": properties, "additionalProperties": False}


@extend_schema_field(
    {
        "type": "string",
        "maxLength": 2048,
        "pattern": ecma(endpoints.URL_PATTERN),
        "description": URL_HELP,
    }
)
class EndpointURLField(serializers.CharField):
    """An endpoint's URL; endpoints.clean applies the address rules on top of the pattern."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=2048, validators=[RegexValidator(endpoints.URL_PATTERN)], **kwargs)


@extend_schema_field(
    {
        "anyOf": [options_schema(agent) for agent in Agent.values if agent in endpoints.OPTIONS],
        "description": "The endpoint's agent's own settings: ntfy `priority` (1–5) and `tags`, Gotify "
        "`priority` (0–10), email `smtp_host`, `smtp_port`, `smtp_username` and `smtp_tls`; the other agents "
        "take none.",
    }
)
class OptionsField(serializers.DictField):
    """An endpoint's options; endpoints.clean checks them against its agent."""


class EndpointSerializer(serializers.ModelSerializer):
    """An endpoint as its owner reads it: secrets masked, never shown again."""

    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE), allow_empty=False)
    kinds = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    libraries = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False, help_text=LIBRARIES_HELP
    )
    options = OptionsField(required=False)
    # Given for Gotify (its app token) and ntfy (an access token); stored as the endpoint's secret.
    token = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=512, help_text=TOKEN_HELP
    )
    # An email endpoint's SMTP password (used with its own smtp_host); stored as its secret.
    smtp_password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=512, help_text=SMTP_PASSWORD_HELP
    )
    secret = serializers.SerializerMethodField()
    # Empty for an email endpoint.
    url = serializers.CharField(max_length=2048, required=False)

    class Meta:
        model = Endpoint
        fields = [
            "id", "agent", "name", "url", "to", "events", "kinds", "libraries", "options", "token", "smtp_password",
            "secret", "paused", "paused_reason", "failing_since", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "paused_reason", "failing_since", "created_at"]

    def get_secret(self, endpoint: Endpoint) -> str:
        shown = self.context.get("secret_once")
        return shown or endpoints.masked(endpoint.secret)

    def to_fields(self) -> dict:
        data = dict(self.validated_data)
        # An empty token or password keeps the one stored.
        secret = data.pop("token", "") or data.pop("smtp_password", "")
        data.pop("smtp_password", None)
        if secret:
            data["secret"] = secret
        return data


# A field's class, and the JSON type its value must have.
JSON_TYPES = [("string", serializers.CharField, str), ("boolean", serializers.BooleanField, bool)]


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's own also takes "7" and 7.0, which the schema's integer does not."""

    def to_internal_value(self, data):
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class EndpointChangeSerializer(EndpointSerializer):
    """What a person sends to make or change an endpoint: the rules endpoints.clean applies, stated."""

    # Its choices are the registered kinds, set when the serializer is made (kinds register at start).
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=[]), required=False)
    libraries = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=2**63 - 1), required=False, help_text=LIBRARIES_HELP
    )
    url = EndpointURLField(required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kinds"].child.choices = kinds.names()

    def to_internal_value(self, data):
        # DRF makes text of a number and a boolean of 0 or "yes"; the schema's string and boolean
        # take none of them, and neither does the API.
        if isinstance(data, dict):
            wrong = {
                name: [f"Must be a JSON {kind}."]
                for name, field in self.fields.items()
                for kind, types, json_type in JSON_TYPES
                if isinstance(field, types) and name in data and not isinstance(data[name], json_type)
            }
            if wrong:
                raise ValidationError(wrong)
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Both become the endpoint's secret: each is taken only by the agents it is for.
        agent = attrs.get("agent", self.instance.agent if self.instance else None)
        if attrs.get("token") and agent == Agent.EMAIL:
            raise ValidationError({"token": ["An email endpoint takes an smtp_password, not a token."]})
        if attrs.get("smtp_password") and agent != Agent.EMAIL:
            raise ValidationError({"smtp_password": ["Only an email endpoint takes an SMTP password."]})
        return attrs


# The body of POST …/endpoints/, one shape per agent (the schema's oneOf on `agent`). They
# describe what EndpointChangeSerializer and endpoints.clean accept for that agent; the view
# validates with EndpointChangeSerializer, so an unknown field such as a webhook's token is refused
# by the same rule for every agent.
COMMON = ["agent", "name", "events", "kinds", "libraries", "paused"]


def _agent_field(agent: str) -> serializers.Field:
    # A pattern rather than a one-value enum: the schema's enum naming would collide five times.
    field = type(f"{agent.capitalize()}AgentField", (serializers.CharField,), {})
    return extend_schema_field({"type": "string", "pattern": f"^{agent}$"})(field)()


def _agent_request(agent: str, extra: dict[str, serializers.Field]) -> type[EndpointChangeSerializer]:
    """The schema of a new endpoint with this agent: the common fields and the agent's own."""
    meta = type("Meta", (EndpointChangeSerializer.Meta,), {"fields": COMMON + list(extra)})
    attrs = {"Meta": meta, "agent": _agent_field(agent), **extra}
    return type(f"{agent.capitalize()}Endpoint", (EndpointChangeSerializer,), attrs)


def _options(agent: str) -> serializers.Field:
    field = type(f"{agent.capitalize()}OptionsField", (serializers.DictField,), {})
    return extend_schema_field(options_schema(agent))(field)(required=False)


AGENT_REQUESTS = {
    Agent.WEBHOOK: _agent_request(Agent.WEBHOOK, {"url": EndpointURLField()}),
    Agent.NTFY: _agent_request(
        Agent.NTFY,
        {
            "url": EndpointURLField(),
            "token": serializers.CharField(required=False, allow_blank=True, max_length=512, help_text=TOKEN_HELP),
            "options": _options(Agent.NTFY),
        },
    ),
    Agent.GOTIFY: _agent_request(
        Agent.GOTIFY,
        {
            "url": EndpointURLField(),
            "token": serializers.CharField(max_length=512, help_text=TOKEN_HELP),
            "options": _options(Agent.GOTIFY),
        },
    ),
    Agent.DISCORD: _agent_request(Agent.DISCORD, {"url": EndpointURLField()}),
    Agent.EMAIL: _agent_request(
        Agent.EMAIL,
        {
            "to": serializers.EmailField(),
            "smtp_password": serializers.CharField(
                required=False, allow_blank=True, max_length=512, help_text=SMTP_PASSWORD_HELP
            ),
            "options": _options(Agent.EMAIL),
        },
    ),
}
NEW_ENDPOINT = PolymorphicProxySerializer(
    component_name="NewEndpoint",
    serializers={agent.value: serializer for agent, serializer in AGENT_REQUESTS.items()},
    resource_type_field_name="agent",
)


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


class NewEndpointSchema(OffloadAutoSchema):
    """A new endpoint's body is required, as drf-spectacular says of any body with required fields
    but not of a polymorphic one."""

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        body = super()._get_request_body(direction)
        if body is not None and self.method == "POST":
            body["required"] = True
        return body


class EndpointListView(APIView):
    schema = NewEndpointSchema()
    permission_classes = [IsAuthenticated, RulePermission]
    permission_rules = {"post": CHANGE_ENDPOINT}

    @extend_schema(responses={200: EndpointSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = endpoints.endpoints_for(request.user).order_by("id")
        return Response(EndpointSerializer(rows, many=True).data)

    @extend_schema(request=NEW_ENDPOINT, responses={201: EndpointSerializer, 400: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        given = EndpointChangeSerializer(data=request.data)
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

    @extend_schema(request=EndpointChangeSerializer, responses={200: EndpointSerializer, 400: OpenApiTypes.OBJECT})
    def patch(self, request: Request, pk: int) -> Response:
        endpoint = _endpoint(request, pk)
        given = EndpointChangeSerializer(endpoint, data=request.data, partial=True)
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

    @extend_schema(request=None, responses={200: EndpointSerializer, 409: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        endpoint = _endpoint(request, pk)
        try:
            secret = endpoints.rotate_secret(endpoint)
        except ValueError as exc:
            # The endpoint's state (its agent), not the request, is what is wrong.
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
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
