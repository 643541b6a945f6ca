"""One round trip to Redis in front of an API request: who its token names, every rate-limit
window it counts against, and the answer-cache versions a job request is about to change.

An API request used to ask Redis three or four times before its answer: the token's user
(the cache), the user's window and the kind's window (the limiter), and, once its job had
committed, the answer cache's versions. The script below does all of it at once, on the
state instance:

- it reads the token's entry (`<user id>|<json>`, written by offload.tokens); an unknown
  key answers 0 and the caller looks the token up in the database, a key naming no active
  user answers -1;
- it counts the request against each window of that user, as offload.lib.limits does, up to
  the first refusal;
- for a request that writes (a job request), it moves the given answer-cache versions on
  *before* the write and marks them busy (a count, for BUSY_SECONDS at most). A reader that
  sees a busy mark computes its answer and does not keep it (offload.api.caching), so an
  answer read before the write commits is never kept under the new version; the mark is
  lifted once the response is on its way (lift_later), and a version bumped here needs no
  second bump after the commit (`prebumped`).
"""

import atexit
import contextvars
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass

from redis.exceptions import RedisError

from offload.lib import limits
from offload.lib.redis_state import key as state_key
from offload.lib.redis_state import state_redis

log = logging.getLogger(__name__)

# Longer than any request between its gate and its commit: the mark's expiry is only the
# safety net for a lift that never came.
BUSY_SECONDS = 30
# Audiences: the token's own user (the script fills in the id), and staff.
USER = "{uid}"
STAFF = "staff"

_GATE = (
    limits.WINDOW_LUA
    + """
local entry = redis.call('GET', ARGV[1])
if not entry then return {0} end
local uid = string.match(entry, '^(%d+)|')
if not uid then return {-1} end
local answers = {1, entry}
local prefix, member, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
local i = 5
local refused = false
for w = 1, n do
  local name = prefix .. ARGV[i] .. ':user:' .. uid
  local limit, window = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  if not refused then
    local decision = count_in(name, limit, window, member)
    for _, v in ipairs(decision) do table.insert(answers, v) end
    refused = decision[1] == 0
  end
end
local m, busy_ms, fresh = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2]
i = i + 3
if not refused then
  for b = 1, m do
    local version = (string.gsub(ARGV[i], '{uid}', uid))
    local busy = (string.gsub(ARGV[i + 1], '{uid}', uid))
    i = i + 2
    redis.call('SET', version, fresh, 'NX')
    redis.call('INCR', version)
    -- A count, not a flag: two job requests of one user in flight lift one mark each.
    redis.call('INCR', busy)
    redis.call('PEXPIRE', busy, busy_ms)
  end
end
return answers
"""
)

# (namespace, audience) pairs this request already moved on before its write.
prebumped: contextvars.ContextVar[frozenset[tuple[str, str]]] = contextvars.ContextVar(
    "offload_prebumped", default=frozenset()
)


def version_key(namespace: str, audience: str) -> str:
    """Where the answer cache's version of (namespace, audience) lives (the state instance)."""
    return state_key("apiv", namespace, audience)


def busy_key(namespace: str, audience: str) -> str:
    """The mark that a write to (namespace, audience) is under way: readers keep no answer while it stands."""
    return state_key("apiv-busy", namespace, audience)


def fresh_version() -> int:
    # A version key may be lost (a restored instance): a recreated one must not take a number
    # it held before, or answers cached under that number would be served again.
    return time.time_ns()


@dataclass(frozen=True)
class Passage:
    """What the gate answered: the token's entry (None: not known to Redis; "": no active user) and the windows."""

    entry: str | None
    decisions: list[limits.Decision]

    @property
    def user_id(self) -> int | None:
        return int(self.entry.partition("|")[0]) if self.entry else None

    @property
    def allowed(self) -> bool:
        return all(d.allowed for d in self.decisions)


def pass_gate(
    token_entry_key: str, windows: list[tuple[str, int, float]], bumps: list[tuple[str, str]] = ()
) -> Passage:
    """Read the token's entry, count the user's windows (scope, limit, seconds) and bump `bumps` (namespace, audience).

    An audience of USER is the token's user. Raises RedisError; the caller fails open or closed.
    """
    args: list = [token_entry_key, state_key("ratelimit") + ":", uuid.uuid4().hex, len(windows)]
    for scope, limit, seconds in windows:
        if limit < 1 or seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and a positive window")
        args += [scope, limit, max(1, round(seconds * 1000))]
    args += [len(bumps), BUSY_SECONDS * 1000, fresh_version()]
    for namespace, audience in bumps:
        args += [version_key(namespace, audience), busy_key(namespace, audience)]
    answer = state_redis().register_script(_GATE)(keys=[], args=args)
    if answer[0] == 0:
        return Passage(None, [])
    if answer[0] == -1:
        return Passage("", [])
    entry = answer[1].decode() if isinstance(answer[1], bytes) else answer[1]
    scopes = [scope for scope, _, _ in windows]
    limits_ = [limit for _, limit, _ in windows]
    return Passage(entry, limits.decisions_from(scopes, limits_, answer[2:]))


_LIFT = """
for _, name in ipairs(KEYS) do
  if redis.call('DECR', name) <= 0 then redis.call('DEL', name) end
end
"""

# The busy marks are lifted off the request's path, by one thread per process.
_lifts: queue.SimpleQueue | None = None
_lifts_pid: int | None = None
_lifts_lock = threading.Lock()


def _lift_forever(jobs: queue.SimpleQueue) -> None:
    while True:
        keys = jobs.get()
        if keys is None:
            return
        try:
            state_redis().register_script(_LIFT)(keys=keys)
        except RedisError as exc:
            log.warning("could not lift busy marks (they expire in %s s): %s", BUSY_SECONDS, exc)


def lift_later(pairs: frozenset[tuple[str, str]]) -> None:
    """Lift the busy marks of these (namespace, audience) pairs once the write has committed; never blocks."""
    global _lifts, _lifts_pid
    if not pairs:
        return
    with _lifts_lock:
        # A forked process does not inherit the thread: one per process.
        if _lifts is None or _lifts_pid != os.getpid():
            _lifts, _lifts_pid = queue.SimpleQueue(), os.getpid()
            threading.Thread(target=_lift_forever, args=(_lifts,), name="offload-busy-lifts", daemon=True).start()
            atexit.register(_lifts.put, None)
    _lifts.put([busy_key(namespace, audience) for namespace, audience in pairs])
