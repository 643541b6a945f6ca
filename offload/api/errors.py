"""API errors are JSON, always: DRF's own, Django's 404, and anything a view let slip."""

import logging

from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.db import DataError
from django.http import Http404, JsonResponse
from django.views.csrf import csrf_failure as html_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from django.views.defaults import bad_request as html_bad_request
from django.views.defaults import server_error as html_server_error
from rest_framework.views import exception_handler as drf_exception_handler

from offload.jobs import IdempotencyKeyReused, JobConflict
from offload.lib.paths import InvalidPath

log = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, plus the domain's errors mapped to their HTTP status."""
    if isinstance(exc, JobConflict):
        return JsonResponse({"detail": str(exc)}, status=409)
    if isinstance(exc, IdempotencyKeyReused):
        return JsonResponse({"detail": str(exc)}, status=422)
    if isinstance(exc, InvalidPath):
        return JsonResponse({"path": [str(exc)]}, status=400)
    if isinstance(exc, ValueError | DataError) and "NUL (0x00)" in str(exc):
        # PostgreSQL refuses NUL in text; it can only have come from the request (a query parameter).
        return JsonResponse({"detail": "Text may not contain NUL (0x00) characters."}, status=400)
    response = drf_exception_handler(exc, context)
    if response is None and isinstance(exc, Http404):
        return JsonResponse({"detail": str(exc) or "Not found."}, status=404)
    return response


# Exempt: it changes nothing, and without it a POST to an unknown API URL got the CSRF
# middleware's HTML 403 instead of this JSON 404.
@csrf_exempt
def api_not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


# Paths whose errors are JSON: the API, the probes and the scrape (what programs read).
JSON_PATHS = ("/api/", "/healthz/", "/metrics")


def wants_json(request) -> bool:
    return request.path.startswith(JSON_PATHS)


# Headers an error answer keeps when it is rewritten as JSON.
_KEPT_HEADERS = (
    "Allow",
    "WWW-Authenticate",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)


class JsonErrorsMiddleware:
    """Outermost: an error answer under /api/, /healthz/ and /metrics is JSON, whoever made it.

    Some errors are answered before any view runs (a bad Host, an oversized body, a CSRF
    refusal) and, with DEBUG on, as Django's debug page, which also shows settings and code.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and wants_json(request)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replaced = JsonResponse({"detail": response.reason_phrase or "Error."}, status=response.status_code)
            for name in _KEPT_HEADERS:
                if response.has_header(name):
                    replaced[name] = response[name]
            response.close()
            return replaced
        return response


def bad_request(request, exception=None):
    """400 (an oversized body, a bad Host): JSON for programs; Django's own page everywhere else."""
    if wants_json(request):
        if isinstance(exception, DisallowedHost):
            detail = "The Host header names no host this server answers for."
        elif isinstance(exception, RequestDataTooBig):
            detail = "The request body is too large."
        else:
            detail = "Bad request."
        return JsonResponse({"detail": detail}, status=400)
    return html_bad_request(request, exception)


def csrf_failure(request, reason: str = ""):
    """A CSRF refusal: JSON for programs; Django's own page everywhere else."""
    if wants_json(request):
        return JsonResponse({"detail": f"CSRF check failed: {reason}"}, status=403)
    return html_csrf_failure(request, reason)


def server_error(request):
    """JSON for API clients; Django's own page everywhere else."""
    if wants_json(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return html_server_error(request)
