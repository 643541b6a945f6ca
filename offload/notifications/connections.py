"""Open websocket connections per user, counted in Redis so every ASGI process sees them all."""

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import redis.asyncio as aioredis
from django.conf import settings

from offload.lib.redis_state import key

# Each connection is a member with an expiry score, refreshed by the heartbeat, so a
# process that dies without closing its sockets frees their places within a minute.
_REGISTER = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
if redis.call('zscore', KEYS[1], ARGV[3]) == false and redis.call('zcard', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('zadd', KEYS[1], ARGV[2], ARGV[3])
redis.call('expire', KEYS[1], 120)
return 1
"""
LEASE_SECONDS = 60

_clients: dict[int, aioredis.Redis] = {}

T = TypeVar("T")


def for_this_loop(store: dict[int, T], make: Callable[[], T]) -> T:
    """The object kept in store for the running event loop, made on first use: asyncio
    connections, pools and semaphores belong to the loop that made them."""
    loop_id = id(asyncio.get_running_loop())
    found = store.get(loop_id)
    if found is None:
        found = store[loop_id] = make()
    return found


def _client() -> aioredis.Redis:
    return for_this_loop(
        _clients,
        lambda: aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=2.0),
    )


async def register(user_id: int, channel_name: str) -> bool:
    """Count this connection in; False when the user already has the maximum open."""
    now = time.time()
    allowed = await _client().eval(
        _REGISTER,
        1,
        key("ws", "user", user_id),
        now,
        now + LEASE_SECONDS,
        channel_name,
        settings.OFFLOAD_WS_MAX_CONNECTIONS_PER_USER,
    )
    return bool(allowed)


async def unregister(user_id: int, channel_name: str) -> None:
    await _client().zrem(key("ws", "user", user_id), channel_name)
