"""Webhooks signed as the Standard Webhooks specification says (the `standardwebhooks` package).

Headers: `webhook-id` (the delivery's, the same on every attempt), `webhook-timestamp` (this
attempt's, in seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`,
one per valid secret, space-separated (during a rotation the old secret signs too).
"""

import base64
import secrets
from datetime import datetime

from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from offload.alerts.agents.http import Result, encode, post
from offload.alerts.models import Delivery, Endpoint

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)


def new_secret() -> str:
    """A fresh signing secret: whsec_ and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secrets(endpoint: Endpoint, now: datetime) -> list[str]:
    """The secrets valid now: the current one, and the previous one during its grace period."""
    valid = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        valid.append(endpoint.previous_secret)
    return valid


def signed_headers(secrets_: list[str], webhook_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for this body."""
    signatures = " ".join(Webhook(secret).sign(webhook_id, at, body) for secret in secrets_)
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


def send(endpoint: Endpoint, delivery: Delivery) -> Result:
    """POST the delivery's body to the webhook URL, signed."""
    now = timezone.now()
    body = encode(delivery.payload)
    return post(endpoint.url, body, signed_headers(signing_secrets(endpoint, now), delivery.webhook_id, body, now))
