"""Response caching for the API's GETs: versioned keys, exact invalidation, ETags.

Every cached answer lives under a key that embeds a version number per (namespace,
audience), where the audience is one user or "staff". A committed write bumps the
versions of the audiences that can see it, so a stale answer is never served after the
commit that changed it; the old keys simply expire. The cache fails open: with Redis away
every read is a miss and the view runs as usual.
"""

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from rest_framework.request import Request
from rest_framework.response import Response

from offload.access import event_recipients

log = logging.getLogger(__name__)

STAFF = "staff"
# A cached answer lives at most this long even without a write (a safety net, not the mechanism).
DEFAULT_TTL = 300
# While one request recomputes an expensive key, others wait this long for it at most.
STAMPEDE_WAIT = 1.0


def _version_key(namespace: str, audience: str) -> str:
    return f"apiv:{namespace}:{audience}"


def audience_of(user) -> str:
    return STAFF if user.is_staff else str(user.pk)


def _fresh_version() -> int:
    # A version key may be evicted (an LRU cache instance): a recreated one must not take a
    # number it held before, or answers cached under that number would be served again.
    return time.time_ns()


def versions(namespaces: Iterable[str], audience: str) -> str | None:
    """The current versions of the namespaces for one audience, as one key fragment; None if unknown."""
    keys = [_version_key(ns, audience) for ns in namespaces]
    found = cache.get_many(keys)
    for key in keys:
        if key not in found:
            fresh = _fresh_version()
            # Ours, or (when another request added one first) theirs.
            found[key] = fresh if cache.add(key, fresh, timeout=None) else cache.get(key)
        if found[key] is None:
            return None  # Redis is away
    return ".".join(str(found[k]) for k in keys)


def bump(namespace: str, audiences: Iterable[str]) -> None:
    """Invalidate every cached answer of the namespace for these audiences (call after commit)."""
    for audience in {*audiences, STAFF}:
        key = _version_key(namespace, audience)
        try:
            if not cache.add(key, _fresh_version(), timeout=None):
                cache.incr(key)
        except ValueError:
            # The key was evicted between add and incr.
            cache.set(key, _fresh_version(), timeout=None)


def bump_on_commit(namespace: str, audiences: Iterable[str]) -> None:
    """Bump once the surrounding transaction commits: readers never see a rolled-back write."""
    audiences = [str(a) for a in audiences if a is not None]
    transaction.on_commit(lambda: bump(namespace, audiences), robust=True)


def on_job_event(sender, event, **kwargs) -> None:
    """Subscriber to offload.jobs' job_event_committed: the job answers of all who see it (and staff's) are stale."""
    bump("jobs", [str(user_id) for user_id in event_recipients(event)])


def etag_for(data: Any) -> str:
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return etag in [tag.strip() for tag in wanted.split(",")] or wanted.strip() == "*"


def cached_get(
    request: Request,
    namespaces: Iterable[str],
    compute: Callable[[], Response],
    *,
    ttl: int | None = None,
    expensive: bool = False,
) -> Response:
    """Answer a GET from the cache, or compute it (once, if expensive) and keep it."""
    if not settings.OFFLOAD_API_CACHE:
        return with_etag(request, compute())
    namespaces = list(namespaces)
    audience = audience_of(request.user)
    base = f"api:{audience}:{request.get_full_path()}"
    version = versions(namespaces, audience)
    if version is None:
        response = compute()
        response["X-Cache"] = "miss"
        return with_etag(request, response)
    key = f"{base}:{version}"
    hit = cache.get(key)
    if hit is None and expensive:
        hit = _single_flight(key, base)
    if hit is not None:
        status, data, etag = hit
        if _not_modified(request, etag):
            return Response(status=304, headers={"ETag": etag, "X-Cache": "hit"})
        return Response(data, status=status, headers={"ETag": etag, "X-Cache": "hit"})
    response = compute()
    if response.status_code == 200:
        etag = etag_for(response.data)
        entry = (response.status_code, response.data, etag)
        cache.set(key, entry, timeout=ttl or DEFAULT_TTL)
        if expensive:
            cache.set(f"stale:{base}", entry, timeout=(ttl or DEFAULT_TTL) * 2)
            cache.delete(f"lock:{key}")
    response["X-Cache"] = "miss"
    return with_etag(request, response)


def _single_flight(key: str, base: str):
    """Let one request recompute; the others serve the stale answer or wait for the fresh one."""
    if cache.add(f"lock:{key}", 1, timeout=30):
        return None  # this request recomputes
    stale = cache.get(f"stale:{base}")
    if stale is not None:
        return stale
    deadline = time.monotonic() + STAMPEDE_WAIT
    while time.monotonic() < deadline:
        time.sleep(0.02)
        fresh = cache.get(key)
        if fresh is not None:
            return fresh
    return None  # waited long enough: compute it ourselves


def with_etag(request: Request, response: Response) -> Response:
    """An ETag on a 200 answer, or a 304 when the client already holds that answer."""
    if response.status_code != 200 or not hasattr(response, "data"):
        return response
    etag = etag_for(response.data)
    if _not_modified(request, etag):
        return Response(status=304, headers={"ETag": etag})
    response["ETag"] = etag
    return response
