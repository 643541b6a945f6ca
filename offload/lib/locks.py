"""Redis locks: SET NX PX with a token, released and extended only by their owner."""

import logging
import secrets
import threading

from offload.lib.redis_state import key, state_redis

log = logging.getLogger(__name__)

# Compare-and-delete / compare-and-extend: only the holder of the token may act.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)


class LockLost(Exception):
    """The lock expired or was taken by someone else while we held it."""


class RedisLock:
    """A named lock with a TTL; `keep_alive()` extends it from a thread while work runs."""

    def __init__(self, name: str, ttl_seconds: float = 60.0) -> None:
        self.name = key("lock", name)
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = secrets.token_hex(16)
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        self.lost = threading.Event()

    def acquire(self) -> bool:
        return bool(state_redis().set(self.name, self.token, nx=True, px=self.ttl_ms))

    def release(self) -> bool:
        self._stop.set()
        if self._keeper:
            self._keeper.join(timeout=5)
        return bool(state_redis().eval(_RELEASE, 1, self.name, self.token))

    def extend(self) -> bool:
        return bool(state_redis().eval(_EXTEND, 1, self.name, self.token, self.ttl_ms))

    def keep_alive(self) -> None:
        """Extend the lock every third of its TTL until released; sets `lost` if it slips."""

        def beat() -> None:
            while not self._stop.wait(self.ttl_ms / 3000):
                try:
                    if not self.extend():
                        self.lost.set()
                        return
                except Exception as exc:  # noqa: BLE001 - a Redis blip is retried on the next beat
                    log.warning("could not extend lock %s: %s", self.name, exc)

        self._keeper = threading.Thread(target=beat, name=f"lock {self.name}", daemon=True)
        self._keeper.start()

    def owner(self) -> str | None:
        value = state_redis().get(self.name)
        return value.decode() if value else None
