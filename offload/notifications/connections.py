"""Open websocket connections per user, counted in Redis so every ASGI process sees them all."""

import time

import redis.asyncio as aioredis
from django.conf import settings

from offload.redis_state import key

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


def _client() -> aioredis.Redis:
    import asyncio

    # One client per event loop: asyncio connections cannot cross loops.
    loop_id = id(asyncio.get_running_loop())
    client = _clients.get(loop_id)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=2.0)
        _clients[loop_id] = client
    return client


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
