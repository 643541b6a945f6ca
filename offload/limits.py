"""Rate limits kept in Redis: an exact sliding window, shared by every process on every host.

One Lua script counts and records a request atomically, so concurrent callers can never
slip past the limit together, and it reads Redis' own clock (TIME), so hosts whose clocks
disagree still share one window. Errors from Redis surface to the caller.
"""

import uuid
from dataclasses import dataclass

from offload import metrics
from offload.redis_state import key as state_key
from offload.redis_state import state_redis

# KEYS[1]: a sorted set of the requests inside the window, scored by their time in ms.
# ARGV: limit, window in ms, a member id unique to this request.
# Answers {allowed, remaining, retry_after_ms, reset_ms}.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  return {1, limit - count - 1, 0, oldest + window - now}
end
-- Denied requests are not recorded. A slot frees when the entry that brings the count
-- under the limit leaves the window (the oldest one, unless the limit was lowered).
local entry = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
local wait = tonumber(entry[2]) + window - now
return {0, 0, wait, wait}
"""


@dataclass(frozen=True)
class Decision:
    """One rate-limit answer; times are seconds from now."""

    allowed: bool
    limit: int
    remaining: int
    # How long to wait before asking again; 0 when allowed.
    retry_after: float
    # When the oldest request counted leaves the window, so the quota starts to refill.
    reset: float


def acquire(scope: str, key: str, limit: int, window_seconds: float) -> Decision:
    """Count one request against (scope, key): at most `limit` in any `window_seconds`."""
    if limit < 1 or window_seconds <= 0:
        raise ValueError("a rate limit needs limit >= 1 and a positive window")
    window_ms = max(1, round(window_seconds * 1000))
    client = state_redis()
    script = client.register_script(_SLIDING_WINDOW)
    allowed, remaining, retry_ms, reset_ms = script(
        keys=[state_key("ratelimit", scope, key)],
        args=[limit, window_ms, uuid.uuid4().hex],
    )
    metrics.ratelimit_decision(scope, bool(allowed))
    return Decision(
        allowed=bool(allowed),
        limit=limit,
        remaining=int(remaining),
        retry_after=max(0, int(retry_ms)) / 1000,
        reset=max(0, int(reset_ms)) / 1000,
    )


def reset(scope: str, key: str) -> None:
    """Forget every request counted against (scope, key)."""
    state_redis().delete(state_key("ratelimit", scope, key))
