"""Redis locks: exclusive, owned, expiring, extendable."""

import time

from offload.lib.locks import RedisLock
from tests.support.waiting import wait_for


def test_a_lock_is_exclusive_until_released():
    first, second = RedisLock("thing"), RedisLock("thing")
    assert first.acquire()
    assert not second.acquire()
    assert first.release()
    assert second.acquire()
    second.release()


def test_only_the_owner_releases_or_extends():
    owner, other = RedisLock("owned"), RedisLock("owned")
    assert owner.acquire()
    assert not other.release()
    assert not other.extend()
    assert owner.owner() == owner.token
    assert owner.release()


def test_a_lock_expires_by_itself():
    lock = RedisLock("short", ttl_seconds=0.3)
    assert lock.acquire()
    wait_for(RedisLock("short").acquire, timeout=5, what="the lock to expire")


def test_keep_alive_extends_past_the_ttl_and_stops_on_release():
    # Kept alive every third of the TTL: a busy machine may delay a renewal, not miss two.
    lock = RedisLock("kept", ttl_seconds=1.5)
    assert lock.acquire()
    lock.keep_alive()
    time.sleep(3.5)
    assert not RedisLock("kept").acquire()
    assert not lock.lost.is_set()
    lock.release()
    assert RedisLock("kept").acquire()


def test_a_lock_taken_over_after_expiry_marks_the_old_holder_lost():
    old = RedisLock("stolen", ttl_seconds=0.3)
    assert old.acquire()
    thief = RedisLock("stolen", ttl_seconds=5)
    wait_for(thief.acquire, timeout=5, what="the old holder's lock to expire")
    assert not old.extend()
    assert not old.release()
    assert thief.owner() == thief.token
