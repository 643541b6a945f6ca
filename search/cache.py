"""An optional short-lived cache of search answers (SEARCH_CACHE_SECONDS; off by default).

Every key carries the index "generation", a token replaced on each commit that marks items
and again after each index write: a cached answer is never served once the data changed, so
caching adds nothing to the commit-to-searchable lag. The TTL only bounds staleness when a
Redis blip loses a bump. It is off by default because a hit answers without asking Typesense:
during an outage a repeated search would get the (still exact) cached answer, not the
database's "degraded" one docs/api.md describes.
"""

import hashlib
import json
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache

GENERATION_KEY = "search:generation"


def bump_generation() -> None:
    """Make every cached answer stale; called on each commit that marks items, and after each index write."""
    if settings.SEARCH_CACHE_SECONDS > 0:
        cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)


def _generation() -> str | None:
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        generation = cache.get(GENERATION_KEY)
    # None: Redis is away (the cache fails open), so nothing is cached.
    return generation


def _key(generation: str, params: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    return f"search:answer:{generation}:{digest}"


def get(params: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the cached answer or None, the key to store a fresh one under or None)."""
    if settings.SEARCH_CACHE_SECONDS <= 0:
        return None, None
    generation = _generation()
    if generation is None:
        return None, None
    key = _key(generation, params)
    return cache.get(key), key


def put(key: str | None, answer: dict[str, Any]) -> None:
    if key is not None:
        cache.set(key, answer, timeout=settings.SEARCH_CACHE_SECONDS)
