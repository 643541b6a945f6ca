"""The Redis "state" role: locks, cancel flags and rate limits. Its errors surface.

Unlike the cache (which fails open), code using this client must see a Redis outage:
a lock that silently "succeeded" without Redis would protect nothing.
"""

import threading

import redis
from django.conf import settings

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def state_redis() -> redis.Redis:
    """A shared client for settings.REDIS_URL, with short timeouts."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=1.0, socket_timeout=2.0, health_check_interval=30
                )
                _clients[url] = client
    return client


def key(*parts: object) -> str:
    """A namespaced key: every key Offload writes starts with REDIS_KEY_PREFIX."""
    return ":".join([settings.REDIS_KEY_PREFIX, *map(str, parts)])


def ping_both() -> None:
    """PING the cache instance and the state instance (one server unless REDIS_CACHE_URL splits them).

    Raises the first error: readiness and `offload_redis_up` need both, since locks, limits,
    cancel flags and the channel layer live on the state instance.
    """
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()
    state_redis().ping()
