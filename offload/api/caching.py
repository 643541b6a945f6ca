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
from django.http import HttpResponseBase
from django.utils.cache import get_conditional_response
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.response import Response

from offload.access import event_recipients
from offload.lib import gate
from offload.lib.redis_state import state_redis
from offload.models import Job, JobMember, JobStatus

log = logging.getLogger(__name__)

STAFF = gate.STAFF
# A cached answer lives at most this long even without a write (a safety net, not the mechanism).
DEFAULT_TTL = 300
# While one request recomputes an expensive key, others wait this long for it at most.
STAMPEDE_WAIT = 1.0


def audience_of(user) -> str:
    return STAFF if user.is_staff else str(user.pk)


def versions(namespaces: Iterable[str], audience: str) -> tuple[str | None, bool]:
    """The current versions of the namespaces for one audience, as one key fragment (None if
    unknown), and whether an answer computed now may be kept (no write to them under way)."""
    namespaces = list(namespaces)
    keys = [gate.version_key(ns, audience) for ns in namespaces]
    busy = [gate.busy_key(ns, audience) for ns in namespaces]
    try:
        client = state_redis()
        found = client.mget(keys + busy)
        found, marks = found[: len(keys)], found[len(keys) :]
        for i, key in enumerate(keys):
            if found[i] is None:
                fresh = gate.fresh_version()
                # Ours, or (when another request set one first) theirs.
                found[i] = fresh if client.set(key, fresh, nx=True) else client.get(key)
    except (RedisError, OSError):
        return None, False  # Redis is away
    if any(v is None for v in found):
        return None, False
    storable = not any(mark is not None and int(mark) > 0 for mark in marks)
    return ".".join(v.decode() if isinstance(v, bytes) else str(v) for v in found), storable


def bump(namespace: str, audiences: Iterable[str]) -> None:
    """Invalidate every cached answer of the namespace for these audiences (call after commit)."""
    keys = [gate.version_key(namespace, audience) for audience in sorted({*audiences, STAFF})]
    # One round trip for every audience: a missing key starts at a fresh number, then each
    # moves on by one. Every job event bumps, so this sits on the spine's path.
    try:
        pipe = state_redis().pipeline(transaction=False)
        for key in keys:
            pipe.set(key, gate.fresh_version(), nx=True)
            pipe.incr(key)
        pipe.execute()
    except (RedisError, OSError) as exc:
        # The cache fails open; its answers expire within DEFAULT_TTL all the same.
        log.warning("could not bump the %s cache versions: %s", namespace, exc)


def bump_on_commit(namespace: str, audiences: Iterable[str]) -> None:
    """Bump once the surrounding transaction commits: readers never see a rolled-back write."""
    audiences = [str(a) for a in audiences if a is not None]
    transaction.on_commit(lambda: bump(namespace, audiences), robust=True)


def on_answers_changed(sender, namespace: str, audience: Iterable[str], **kwargs) -> None:
    """Subscriber to offload.signals' answers_changed: those answers are stale once the change commits."""
    bump_on_commit(namespace, audience)


def on_job_event(sender, event, **kwargs) -> None:
    """Subscriber to offload.jobs' job_event_committed: the job answers of all who see it (and staff's) are stale."""
    audiences = [str(user_id) for user_id in event_recipients(event)]
    done = gate.prebumped.get()
    if all(("jobs", audience) in done for audience in [*audiences, STAFF]):
        return  # this request's gate moved them on before its write (offload/lib/gate.py)
    bump("jobs", audiences)


def on_holds_changed(sender, kind: str, **kwargs) -> None:
    """Subscriber to offload.jobs' holds_changed: a pause, resume or cap changes the waiting_reason
    of the kind's queued jobs, so the job answers of everyone who sees one of them (and staff's) are stale."""
    waiting = Job.objects.filter(kind=kind, status=JobStatus.QUEUED)
    requesters = waiting.exclude(requested_by=None).values_list("requested_by_id", flat=True).distinct()
    joined = JobMember.objects.filter(job__in=waiting).values_list("user_id", flat=True).distinct()
    bump("jobs", {str(user_id) for user_id in (*requesters, *joined)})


def etag_for(data: Any) -> str:
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


def _conditional(request: Request, etag: str, headers: dict[str, str]) -> HttpResponseBase | None:
    """Django's own answer to If-None-Match / If-Match for this ETag (304, 412), or None to answer in full.

    Django compares If-None-Match weakly, so W/"…" (what a compressing proxy sends back) matches too.
    """
    answer = get_conditional_response(request._request, etag=etag)
    if answer is not None:
        for name, value in headers.items():
            answer[name] = value
    return answer


def cached_get(
    request: Request,
    namespaces: Iterable[str],
    compute: Callable[[], Response],
    *,
    ttl: int | None = None,
    expensive: bool = False,
) -> Response | HttpResponseBase:
    """Answer a GET from the cache, or compute it (once, if expensive) and keep it."""
    if not settings.OFFLOAD_API_CACHE:
        return with_etag(request, compute())
    namespaces = list(namespaces)
    audience = audience_of(request.user)
    # Scheme and host belong to the key: a cached answer's links (`next`, `url`) carry them.
    base = f"api:{audience}:{request.build_absolute_uri()}"
    version, storable = versions(namespaces, audience)
    if version is None:
        response = compute()
        response["X-Cache"] = "miss"
        return with_etag(request, response)
    key = f"{base}:{version}"
    hit = cache.get(key)
    if hit is None and expensive and storable:
        # While a write is under way nobody waits on, or is served, another's answer.
        hit = _single_flight(key, base)
    if hit is not None:
        status, data, etag = hit
        conditional = _conditional(request, etag, {"ETag": etag, "X-Cache": "hit"})
        if conditional is not None:
            return conditional
        return Response(data, status=status, headers={"ETag": etag, "X-Cache": "hit"})
    response = compute()
    if response.status_code == 200 and storable:
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


def with_etag(request: Request, response: Response) -> Response | HttpResponseBase:
    """An ETag on a 200 answer, or a 304 when the client already holds that answer."""
    if response.status_code != 200 or not hasattr(response, "data"):
        return response
    etag = etag_for(response.data)
    conditional = _conditional(
        request, etag, {"ETag": etag, **({"X-Cache": response["X-Cache"]} if response.has_header("X-Cache") else {})}
    )
    if conditional is not None:
        return conditional
    response["ETag"] = etag
    return response
