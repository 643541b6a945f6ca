"""`GET /metrics`: the Prometheus exposition of every web and worker process (see offload/metrics/)."""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from offload.metrics import registry


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Open by default; with METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    expected = settings.METRICS_TOKEN
    if expected and not hmac.compare_digest(_bearer_token(request).encode(), expected.encode()):
        response = JsonResponse({"detail": "Metrics need Authorization: Bearer <METRICS_TOKEN>."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(registry.scrape(), content_type=registry.CONTENT_TYPE)
