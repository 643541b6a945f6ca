"""A circuit breaker kept in Redis, so every worker on every host sees one state per service.

closed: calls go through; `failure_threshold` consecutive failures open it.
open: calls are refused without reaching the service until the cooldown ends.
half-open: one caller at a time may try; a success closes the breaker, a failure opens it again.
held: the service asked for a pause (Retry-After); calls are refused until it ends, then the
breaker is as it was.

Each transition is one Lua script reading Redis' clock (TIME), so processes never race
or disagree about time. Errors from Redis surface to the caller.
"""

from dataclasses import dataclass

from offload.lib.redis_state import key as state_key
from offload.lib.redis_state import state_redis

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

# Every script answers {allowed (0/1), state, wait_ms}.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
local held_until = tonumber(redis.call('HGET', KEYS[1], 'held_until') or '0')
if now < held_until then
  return {0, 'open', held_until - now}
end
"""

# ARGV[1]: how long a half-open trial may take before another caller may try, in ms.
_ALLOW = (
    _NOW
    + """
if now < open_until then
  return {0, 'open', open_until - now}
end
if open_until > 0 then
  local trial_until = tonumber(redis.call('HGET', KEYS[1], 'trial_until') or '0')
  if now < trial_until then
    return {0, 'half-open', trial_until - now}
  end
  redis.call('HSET', KEYS[1], 'trial_until', now + tonumber(ARGV[1]))
  return {1, 'half-open', 0}
end
return {1, 'closed', 0}
"""
)

# ARGV[1]: failures that open the breaker; ARGV[2]: cooldown in ms; ARGV[3]: key TTL in ms.
_FAILURE = (
    _NOW
    + """
if now < open_until then
  return {0, 'open', open_until - now}
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if open_until > 0 or failures >= tonumber(ARGV[1]) then
  -- A failed trial, or one failure too many: open (again) for a full cooldown.
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[2]), 'failures', 0)
  redis.call('HDEL', KEYS[1], 'trial_until')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {0, 'open', tonumber(ARGV[2])}
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, 'closed', 0}
"""
)

# ARGV[1]: refuse calls for at least this long, in ms; ARGV[2]: key TTL in ms.
# A hold is the service asking for a pause, not a sign of ill health: it neither counts as
# a failure nor leaves a half-open state behind, and a longer hold is never shortened.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held_until = tonumber(redis.call('HGET', KEYS[1], 'held_until') or '0')
local until_ms = now + tonumber(ARGV[1])
if until_ms > held_until then
  redis.call('HSET', KEYS[1], 'held_until', until_ms)
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  held_until = until_ms
end
return {0, 'open', held_until - now}
"""


@dataclass(frozen=True)
class BreakerState:
    """Whether a call may go ahead, the breaker's state, and how long to wait (seconds) if not."""

    allowed: bool
    state: str
    retry_after: float


class CircuitBreaker:
    """A named breaker; several instances with one name share one state through Redis."""

    def __init__(
        self, name: str, *, failure_threshold: int = 5, cooldown: float = 30.0, trial_timeout: float = 30.0
    ) -> None:
        self.key = state_key("breaker", name)
        self.failure_threshold = failure_threshold
        self.cooldown_ms = max(1, round(cooldown * 1000))
        self.trial_ms = max(1, round(trial_timeout * 1000))
        # Long enough to remember a half-open breaker; a forgotten one simply starts closed.
        self.ttl_ms = max(10 * self.cooldown_ms, 3_600_000)

    def _run(self, source: str, *args: int) -> BreakerState:
        client = state_redis()
        allowed, state, wait_ms = client.register_script(source)(keys=[self.key], args=list(args))
        state = state.decode() if isinstance(state, bytes) else state
        return BreakerState(bool(allowed), state, max(0, int(wait_ms)) / 1000)

    def allow(self) -> BreakerState:
        """Ask before a call; in half-open state only one caller at a time is allowed."""
        return self._run(_ALLOW, self.trial_ms)

    def record_success(self) -> None:
        """The service answered: close the breaker and forget past failures (a hold stays)."""
        state_redis().hdel(self.key, "failures", "open_until", "trial_until")

    def record_failure(self) -> BreakerState:
        """The service failed a call; answers the state after counting it."""
        return self._run(_FAILURE, self.failure_threshold, self.cooldown_ms, self.ttl_ms)

    def hold_open(self, seconds: float) -> BreakerState:
        """Refuse calls for at least `seconds` (the service asked us to wait, e.g. Retry-After); then as before."""
        return self._run(_HOLD, max(1, round(seconds * 1000)), self.ttl_ms)

    def reset(self) -> None:
        """Forget everything: closed, no failures, no hold."""
        state_redis().delete(self.key)

    def state(self) -> str:
        """closed, open or half-open, without taking a trial slot."""
        client = state_redis()
        (open_until, held_until), now = client.hmget(self.key, "open_until", "held_until"), client.time()
        now_ms = now[0] * 1000 + now[1] // 1000
        if now_ms < int(held_until or 0) or now_ms < int(open_until or 0):
            return OPEN
        return HALF_OPEN if open_until else CLOSED
