"""API errors are JSON, always: DRF's own, Django's 404, and anything a view let slip."""

import logging

from django.db import DataError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.views import exception_handler as drf_exception_handler

from offload.jobs.transitions import IdempotencyKeyReused, JobConflict
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


def server_error(request):
    """JSON for API clients; Django's own page everywhere else."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)
