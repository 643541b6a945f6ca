"""A request id on every request: the trusted proxy's X-Request-ID, or a fresh one; returned in the response."""

import re
import uuid

from django.http import HttpRequest, HttpResponse

from offload import logs
from offload.ratelimit import is_trusted_proxy

HEADER = "X-Request-ID"
# A proxy's id is taken as is when it is this plain; anything else is replaced, never echoed.
_VALID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


def request_id_for(request: HttpRequest) -> str:
    """The id a trusted proxy sent, or a new one: a client cannot choose the id its requests log under."""
    sent = request.META.get("HTTP_X_REQUEST_ID", "")
    if sent and _VALID.fullmatch(sent) and is_trusted_proxy(request.META.get("REMOTE_ADDR", "")):
        return sent
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Binds the request id to every log line of the request and returns it in X-Request-ID."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_for(request)
        logs.bind_request(request.request_id)
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response
