"""The dashboard snapshot's place in the cache, and forgetting it after an operator's change.

Apart from the dashboard (offload/admin/dashboard.py): the dashboard reads the failure groups
through the Failures page's module, and that page, like the Queues page, forgets the snapshot
once an operator changed what it shows; so the key sits below them all.
"""

from django.core.cache import cache

CACHE_KEY = "ops-dashboard:v1"


def forget_snapshot() -> None:
    """Drop the cached snapshot: an operator's change shows on their next look, not after the cache's seconds."""
    cache.delete(CACHE_KEY)
