"""Search's readiness check, reported by /healthz/ready (registered in SearchConfig.ready())."""

from django.conf import settings

from search import typesense as ts
from search.sync import backlog


def check() -> str:
    """ "ok", "not configured", or "degraded: <why>" (unreachable, or writes waiting too long)."""
    client = ts.read_client()
    if client is None:
        return "not configured"
    try:
        healthy = client.operations.is_healthy()
    except ts.ERRORS as exc:
        return f"degraded: unreachable ({type(exc).__name__})"
    if not healthy:
        return "degraded: unhealthy"
    waiting, oldest_age = backlog()
    if waiting and oldest_age > settings.SEARCH_SYNC_STALE_SECONDS:
        return f"degraded: {waiting} index write(s) waiting, the oldest for {oldest_age:.0f} s"
    return "ok"
