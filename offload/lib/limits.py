"""Rate limits kept in Redis: an exact sliding window, shared by every process on every host.

One Lua script counts and records a request atomically, so concurrent callers can never
slip past the limit together, and it reads Redis' own clock (TIME), so hosts whose clocks
disagree still share one window. Errors from Redis surface to the caller.
"""

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from redis.exceptions import RedisError

from offload.lib.redis_state import key as state_key
from offload.lib.redis_state import state_redis

log = logging.getLogger(__name__)

# Who hears of every decision, as listener(scope, allowed): the metrics count them
# (subscribed from OffloadConfig.ready()); a wrapper knows no metrics of its own.
_decision_listeners: list[Callable[[str, bool], None]] = []


def on_decision(listener: Callable[[str, bool], None]) -> None:
    """Call listener(scope, allowed) for every rate-limit decision (from an app's ready(); once each)."""
    if listener not in _decision_listeners:
        _decision_listeners.append(listener)


# One request counted against one sliding window: a sorted set of the requests inside the
# window, scored by their time in ms (Redis' clock, `now`). Answers {allowed, remaining,
# retry_after_ms, reset_ms}. A Lua prelude the scripts here and offload/lib/gate.py share.
WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function count_in(name, limit, window, member)
  redis.call('ZREMRANGEBYSCORE', name, '-inf', now - window)
  local count = redis.call('ZCARD', name)
  if count < limit then
    redis.call('ZADD', name, now, member)
    redis.call('PEXPIRE', name, window)
    local oldest = tonumber(redis.call('ZRANGE', name, 0, 0, 'WITHSCORES')[2])
    return {1, limit - count - 1, 0, oldest + window - now}
  end
  -- Denied requests are not recorded. A slot frees when the entry that brings the count
  -- under the limit leaves the window (the oldest one, unless the limit was lowered).
  local entry = redis.call('ZRANGE', name, count - limit, count - limit, 'WITHSCORES')
  local wait = tonumber(entry[2]) + window - now
  return {0, 0, wait, wait}
end
"""

# Several windows in one call, in order, stopping at the first refusal (the later ones are
# neither counted nor recorded). KEYS[i]: window i; ARGV: a member id, then (limit, window ms)
# per key. Answers the flat list of each evaluated window's four figures.
_SLIDING_WINDOWS = (
    WINDOW_LUA
    + """
local answers = {}
for i, name in ipairs(KEYS) do
  local decision = count_in(name, tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]), ARGV[1])
  for _, v in ipairs(decision) do table.insert(answers, v) end
  if decision[1] == 0 then return answers end
end
return answers
"""
)


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
    return acquire_all([Window(scope, key, limit, window_seconds)])[0]


def decisions_from(scopes: list[str], limits_: list[int], flat: list) -> list[Decision]:
    """The decisions a sliding-window script answered (four figures each, up to the first refusal)."""
    decisions = []
    for scope, limit, start in zip(scopes, limits_, range(0, len(flat), 4), strict=False):
        allowed, remaining, retry_ms, reset_ms = flat[start : start + 4]
        for listener in _decision_listeners:
            listener(scope, bool(allowed))
        decisions.append(
            Decision(
                allowed=bool(allowed),
                limit=limit,
                remaining=int(remaining),
                retry_after=max(0, int(retry_ms)) / 1000,
                reset=max(0, int(reset_ms)) / 1000,
            )
        )
    return decisions


@dataclass(frozen=True)
class Window:
    """One limit to count a request against: at most `limit` per `window_seconds` for (scope, key)."""

    scope: str
    key: str
    limit: int
    window_seconds: float


def acquire_all(windows: list[Window]) -> list[Decision]:
    """Count one request against each window in one round trip, in order, up to the first refusal.

    The answer holds a decision per window counted; when the last one refuses, the windows
    after it were not counted. The sliding window is the same as acquire()'s.
    """
    for w in windows:
        if w.limit < 1 or w.window_seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and a positive window")
    args: list = [uuid.uuid4().hex]
    for w in windows:
        args += [w.limit, max(1, round(w.window_seconds * 1000))]
    client = state_redis()
    flat = client.register_script(_SLIDING_WINDOWS)(
        keys=[state_key("ratelimit", w.scope, w.key) for w in windows], args=args
    )
    return decisions_from([w.scope for w in windows], [w.limit for w in windows], flat)


def reset(scope: str, key: str) -> None:
    """Forget every request counted against (scope, key)."""
    state_redis().delete(state_key("ratelimit", scope, key))


def parse_rate(text: str) -> tuple[int, float]:
    """'300/60' → (300 requests, 60 seconds)."""
    count, _, seconds = text.partition("/")
    return int(count), float(seconds or 60)


# Refusals per client, for the admin's "most limited" table.
DENIALS_KEPT_DAYS = 2


def _denials_key(day: dt.date) -> str:
    return state_key("ratelimit", "denied", day.isoformat())


def record_denial(scope: str, who: str) -> None:
    """Count a refused request against its client, for the "most limited" table; never raises."""
    try:
        name = _denials_key(timezone.now().date())
        pipe = state_redis().pipeline()
        pipe.zincrby(name, 1, f"{scope}|{who}")
        pipe.expire(name, DENIALS_KEPT_DAYS * 86400)
        pipe.execute()
    except RedisError as exc:
        log.warning("could not record a rate-limit denial: %s", exc)


def most_limited(count: int = 20) -> list[dict[str, Any]]:
    """Today's most refused clients, most refused first."""
    rows = state_redis().zrevrange(_denials_key(timezone.now().date()), 0, count - 1, withscores=True)
    result = []
    for member, score in rows:
        scope, _, who = member.decode().partition("|")
        result.append({"scope": scope, "who": who, "denied": int(score)})
    return result
