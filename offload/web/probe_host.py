"""The probes and the scrape answer a client on the loopback whatever ALLOWED_HOSTS says.

Prometheus (deploy/prometheus/prometheus.yml) and a probe on the host address the server as
127.0.0.1:8000, a name ALLOWED_HOSTS rightly leaves out: Django would answer 400. A request
for a probe path that comes straight from the loopback (no proxy in between: no
X-Forwarded-For) is answered as if addressed to the site's own name; a request from elsewhere,
or through nginx, is held to ALLOWED_HOSTS as before.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host

PROBE_PATHS = frozenset({"/healthz/live", "/healthz/ready", "/metrics"})


def from_the_loopback(request: HttpRequest) -> bool:
    """Whether the client is on this machine and spoke to the server directly."""
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def site_host() -> str | None:
    """A name ALLOWED_HOSTS accepts: its first entry that is a name, not a pattern."""
    for pattern in settings.ALLOWED_HOSTS:
        name = pattern.lstrip(".")
        if name and name != "*":
            return name
    return None


class LoopbackProbeHostMiddleware:
    """Lets a loopback probe or scrape through Django's host check; nothing else changes."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in PROBE_PATHS and from_the_loopback(request):
            domain, _ = split_domain_port(request.META.get("HTTP_HOST", ""))
            name = site_host()
            if name and not validate_host(domain, settings.ALLOWED_HOSTS):
                request.META["HTTP_HOST"] = name
        return self.get_response(request)
