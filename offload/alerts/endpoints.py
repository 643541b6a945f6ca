"""What a person does with their endpoints, as plain functions the API and the admin share.

`get_endpoint_for_user` is the only way code fetches an endpoint on someone's behalf: a user
sees their own endpoints, and nobody else's (404, as for a missing one).
"""

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.utils import timezone

from offload import access
from offload.alerts import delivery, outbox
from offload.alerts.agents import webhook
from offload.alerts.models import SUBSCRIBABLE, Agent, Delivery, Endpoint, EventType
from offload.jobs import kinds
from offload.lib import outbound

# How long a rotated-out signing secret still signs.
ROTATION_GRACE = timedelta(hours=24)
# The agents whose secret a person gives (a token, or email's SMTP password); a webhook's is made here.
TOKEN_AGENTS = (Agent.GOTIFY, Agent.NTFY)
SECRET_AGENTS = (*TOKEN_AGENTS, Agent.EMAIL)
SECRET_MASK = "••••••••"  # noqa: S105 (what is shown instead of a secret)
# What an endpoint's URL may look like: http(s), a host name, an IPv4 address or a bracketed
# IPv6 one, a port the URL can hold, then printable ASCII. The API's schema publishes it as the
# url's pattern; the address rules (offload.lib.outbound) apply on top.
PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = re.compile(
    rf"\Ahttps?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?)(:{PORT})?([/?#][!-~]*)?\Z"
)
# Each agent's options, and the priorities its service accepts.
OPTIONS = {
    Agent.NTFY: ("priority", "tags"),
    Agent.GOTIFY: ("priority",),
    # An email endpoint's own SMTP server; without smtp_host the environment's (EMAIL_HOST…) is used.
    Agent.EMAIL: ("smtp_host", "smtp_port", "smtp_username", "smtp_tls"),
}
PRIORITIES = {Agent.NTFY: range(1, 6), Agent.GOTIFY: range(0, 11)}
TAG_LENGTH = 64
# none: plain SMTP (port 25); starttls: upgraded after connecting (587); ssl: TLS from the start (465).
SMTP_TLS = ("none", "starttls", "ssl")
SMTP_HOST_PATTERN = re.compile(r"\A[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?\Z")
SMTP_HOST_LENGTH = 253
SMTP_USERNAME_LENGTH = 254


class EndpointNotFound(ObjectDoesNotExist):
    pass


def endpoints_for(user):
    return Endpoint.objects.filter(owner=user)


def get_endpoint_for_user(user, pk) -> Endpoint:
    """The user's endpoint, or EndpointNotFound (also for someone else's)."""
    try:
        return endpoints_for(user).get(pk=int(pk))
    except (Endpoint.DoesNotExist, ValueError, TypeError):
        raise EndpointNotFound(f"No endpoint {pk}.") from None


def get_delivery_for_user(user, endpoint_pk, pk) -> Delivery:
    endpoint = get_endpoint_for_user(user, endpoint_pk)
    try:
        return endpoint.deliveries.get(pk=int(pk))
    except (Delivery.DoesNotExist, ValueError, TypeError):
        raise EndpointNotFound(f"No delivery {pk}.") from None


def clean(user, fields: dict[str, Any], endpoint: Endpoint | None = None) -> dict[str, Any]:
    """The endpoint's fields, checked for this user; ValueError names what is wrong."""
    agent = fields.get("agent", endpoint.agent if endpoint else None)
    if agent not in Agent.values:
        raise ValueError(f"Unknown agent {agent!r}; choose one of {', '.join(Agent.values)}.")
    if endpoint is not None and agent != endpoint.agent:
        raise ValueError("An endpoint's agent cannot change; make a new endpoint.")
    cleaned = dict(fields)
    if "events" in fields or endpoint is None:
        events = fields.get("events") or []
        unknown = [e for e in events if e not in SUBSCRIBABLE]
        if not events or unknown:
            raise ValueError(f"events: choose one or more of {', '.join(SUBSCRIBABLE)}.")
    if fields.get("kinds"):
        unknown = [k for k in fields["kinds"] if k not in kinds.names()]
        if unknown:
            raise ValueError(f"kinds: unknown kind {unknown[0]!r}.")
    if fields.get("libraries"):
        visible = set(access.libraries_for(user).filter(pk__in=fields["libraries"]).values_list("pk", flat=True))
        missing = [pk for pk in fields["libraries"] if pk not in visible]
        if missing:
            raise ValueError(f"libraries: no library {missing[0]}.")
    if agent == Agent.EMAIL:
        if not (fields["to"] if "to" in fields else endpoint and endpoint.to):
            raise ValueError("to: an email endpoint needs an address.")
    elif endpoint is None or "url" in fields:
        # A change that leaves the URL alone is not refused for it: an owner can still pause or
        # rename an endpoint whose address the rules refuse since (OFFLOAD_NOTIFY_ALLOW_PRIVATE
        # turned off); its attempts are refused anyway.
        _check_url(fields.get("url") or "")
    if agent == Agent.GOTIFY and not (fields.get("secret") or (endpoint and endpoint.secret)):
        raise ValueError("token: a Gotify endpoint needs its application's token.")
    if fields.get("secret") and agent not in SECRET_AGENTS:
        raise ValueError("token: only Gotify and ntfy endpoints take a token (a webhook's secret is made here).")
    _check_options(agent, fields.get("options") or {})
    return cleaned


def _check_url(url: str) -> None:
    if not url:
        raise ValueError("url: this agent needs a URL.")
    if not URL_PATTERN.match(url):
        raise ValueError("url: an http or https URL with a host name or address, without spaces or credentials.")
    try:
        outbound.check_url(url, settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE)
    except outbound.Refused as exc:
        raise ValueError(f"url: {exc}") from None


def _check_options(agent: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(OPTIONS.get(agent, ())))
    if unknown:
        raise ValueError(f"options: {agent} takes no {unknown[0]!r}.")
    if "priority" in options:
        priority = options["priority"]
        if not isinstance(priority, int) or isinstance(priority, bool) or priority not in PRIORITIES[agent]:
            span = PRIORITIES[agent]
            raise ValueError(f"options: priority must be a whole number from {span.start} to {span.stop - 1}.")
    _check_smtp(options)
    tags = options.get("tags", [])
    # PostgreSQL's jsonb holds no NUL character.
    if not isinstance(tags, list) or not all(
        isinstance(tag, str) and 0 < len(tag) <= TAG_LENGTH and "\x00" not in tag for tag in tags
    ):
        raise ValueError(f"options: tags must be a list of strings of 1 to {TAG_LENGTH} characters.")


def _check_smtp(options: dict[str, Any]) -> None:
    if "smtp_host" in options:
        host = options["smtp_host"]
        if not (isinstance(host, str) and len(host) <= SMTP_HOST_LENGTH and SMTP_HOST_PATTERN.match(host)):
            raise ValueError("options: smtp_host must be a host name or an IPv4 address.")
        # The address rules of a URL's host: the worker connects to it from inside the network.
        try:
            outbound.check_url(f"http://{host}/", settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE)
        except outbound.Refused as exc:
            raise ValueError(f"options: smtp_host: {exc}") from None
    if "smtp_port" in options:
        port = options["smtp_port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError("options: smtp_port must be a whole number from 1 to 65535.")
    if "smtp_username" in options:
        username = options["smtp_username"]
        if not (isinstance(username, str) and len(username) <= SMTP_USERNAME_LENGTH and "\x00" not in username):
            raise ValueError(f"options: smtp_username must be a string of at most {SMTP_USERNAME_LENGTH} characters.")
    if "smtp_tls" in options and options["smtp_tls"] not in SMTP_TLS:
        raise ValueError(f"options: smtp_tls must be one of {', '.join(SMTP_TLS)}.")


def create_endpoint(user, fields: dict[str, Any]) -> tuple[Endpoint, str]:
    """Make an endpoint; answer it and its secret (a webhook's, made here), shown this once."""
    fields = clean(user, fields)
    endpoint = Endpoint(owner=user, **fields)
    if endpoint.agent == Agent.WEBHOOK:
        endpoint.secret = webhook.new_secret()
    endpoint.save()
    return endpoint, endpoint.secret if endpoint.agent == Agent.WEBHOOK else ""


def update_endpoint(user, endpoint: Endpoint, fields: dict[str, Any]) -> Endpoint:
    """Change an endpoint's fields; resuming a paused endpoint clears its reason and failing clock."""
    fields = clean(user, fields, endpoint)
    fields.pop("agent", None)
    if fields.get("paused") is False and endpoint.paused:
        fields.update(paused_reason="", failing_since=None)
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save(update_fields=list(fields) or None)
    return endpoint


def rotate_secret(endpoint: Endpoint) -> str:
    """A new signing secret; the old one keeps signing for 24 hours. Answer the new one (shown once)."""
    if endpoint.agent != Agent.WEBHOOK:
        raise ValueError("Only a webhook has a signing secret to rotate.")
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = timezone.now() + ROTATION_GRACE
    endpoint.secret = webhook.new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
    return endpoint.secret


def send_test(endpoint: Endpoint) -> Delivery:
    """One "test" delivery to the endpoint, queued now (subject to the hourly limits, never deduped)."""
    data = {"endpoint": {"id": endpoint.pk, "name": endpoint.name, "agent": endpoint.agent}}
    with transaction.atomic():
        (row,) = outbox.write([endpoint], EventType.TEST, "", data, noisy=False)
    return row


def redeliver(row: Delivery) -> Delivery:
    return delivery.redeliver(row)


def masked(secret: str) -> str:
    """A secret as shown after it was made: never its value."""
    return SECRET_MASK if secret else ""
