"""What every agent answers, and the one HTTP call the HTTP agents share (offload.lib.outbound)."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from offload.alerts.models import Delivery, Endpoint
from offload.lib import outbound


@dataclass(frozen=True)
class Result:
    ok: bool
    status_code: int | None = None
    latency_ms: int | None = None
    # The first 1 KB of the answer, as text (never rendered as HTML).
    response: str = ""
    error: str = ""
    # No retry can help: a refused address, or 410 Gone (which also disables the endpoint).
    permanent: bool = False
    gone: bool = False


Sender = Callable[[Endpoint, Delivery], Result]


def encode(document: dict[str, Any]) -> bytes:
    """JSON as sent (and, for a webhook, signed): compact, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def post(url: str, body: bytes, headers: dict[str, str]) -> Result:
    """POST to an endpoint's URL with the notify timeout and address rules; 2xx is success."""
    try:
        answer = outbound.post(
            url,
            body,
            {"User-Agent": "Offload-Notify/1", **headers},
            timeout=settings.OFFLOAD_NOTIFY_TIMEOUT,
            allow_private=settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE,
        )
    except outbound.Refused as exc:
        return Result(ok=False, error=f"Refused: {exc}", permanent=True)
    except outbound.SendFailed as exc:
        return Result(ok=False, error=str(exc))
    text = answer.body.decode("utf-8", errors="replace")
    ok = 200 <= answer.status < 300
    error = (
        "" if ok else f"HTTP {answer.status}" + (" (redirects are not followed)" if 300 <= answer.status < 400 else "")
    )
    return Result(
        ok=ok,
        status_code=answer.status,
        latency_ms=answer.latency_ms,
        response=text,
        error=error,
        permanent=answer.status == 410,
        gone=answer.status == 410,
    )
