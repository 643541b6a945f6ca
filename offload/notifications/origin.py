"""The websocket's origin check: a browser page may open /ws/events/ only from this very site.

Channels' AllowedHostsOriginValidator compares the Origin's host with ALLOWED_HOSTS and ignores
its port, so a page served by anything else on the same host (another port) could open a
socket with the visitor's session cookie. Here the Origin must name the host *and* port the
request was sent to (its Host header), and that host must be allowed.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _netloc(host: str, port: str, scheme: str) -> str:
    return f"{host}:{port or DEFAULT_PORTS.get(scheme, '')}"


def same_origin(scope) -> bool:
    """Whether the Origin header names the host and port of the request, and that host is allowed."""
    origin, host_header = _header(scope, b"origin"), _header(scope, b"host")
    if not origin or not host_header:
        return False
    try:
        parts = urlsplit(origin)
        origin_port = str(parts.port or "")
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host, port = split_domain_port(host_header)
    if not host or not validate_host(host, settings.ALLOWED_HOSTS):
        return False
    # The request arrived over ws(s): its Host header's default port follows the Origin's scheme.
    wanted = _netloc(host.strip("[]"), port, parts.scheme)
    return _netloc(parts.hostname.lower(), origin_port, parts.scheme) == wanted.lower()


class SameOriginValidator:
    """ASGI middleware: a websocket whose Origin is not this site is refused before it is accepted."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not same_origin(scope):
            return await WebsocketDenier.as_asgi()(scope, receive, send)
        return await self.application(scope, receive, send)
