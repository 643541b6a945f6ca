"""`GET /metrics`: the Prometheus exposition of every web and worker process (see offload/metrics/)."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from offload.metrics import registry
from offload.ratelimit import client_ip
from offload.web.readonly import read_only


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _from_allowed_address(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.OFFLOAD_METRICS_ALLOWED_IPS)


def _has_token(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    return bool(expected) and hmac.compare_digest(_bearer_token(request).encode(), expected.encode())


@read_only
def metrics_view(request: HttpRequest) -> HttpResponse:
    """For clients in OFFLOAD_METRICS_ALLOWED_IPS (loopback by default), or with the Bearer METRICS_TOKEN.

    The series name views, job kinds and error types: not for everyone who can reach the port.
    """
    if not (_from_allowed_address(request) or _has_token(request)):
        detail = "Metrics are served to allowed addresses"
        detail += ", or with Authorization: Bearer <METRICS_TOKEN>." if settings.METRICS_TOKEN else "."
        response = JsonResponse({"detail": detail}, status=403)
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(registry.scrape(), content_type=registry.CONTENT_TYPE)
