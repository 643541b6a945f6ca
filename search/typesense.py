"""The one wrapper around the Typesense client."""

import typesense
from django.conf import settings


def read_client() -> typesense.Client | None:
    """A client for reads: a short timeout and at most one retry. None when unconfigured."""
    if not settings.TYPESENSE_URL:
        return None
    from urllib.parse import urlsplit

    url = urlsplit(settings.TYPESENSE_URL)
    return typesense.Client(
        {
            "nodes": [{"host": url.hostname, "port": url.port or 8108, "protocol": url.scheme or "http"}],
            "api_key": settings.TYPESENSE_API_KEY,
            "connection_timeout_seconds": 1.0,
            "num_retries": 1,
            "retry_interval_seconds": 0.05,
        }
    )


def health() -> str:
    """ "ok", "not configured", or raises when the server does not answer healthy."""
    client = read_client()
    if client is None:
        return "not configured"
    answer = client.operations.is_healthy()
    return "ok" if answer else "unhealthy"
