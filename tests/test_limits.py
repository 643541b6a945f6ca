"""The Redis rate limiter: an exact sliding window, shared by threads and processes."""

import multiprocessing
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor

import pytest

from offload.lib import limits
from tests.support.cluster import wait_for


@pytest.fixture
def key():
    """A key no other test shares; forgotten afterwards."""
    name = uuid.uuid4().hex
    yield name
    limits.reset("test", name)


def test_allows_up_to_the_limit_then_denies_with_retry_after(key):
    decisions = [limits.acquire("test", key, 3, 60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[0].retry_after == 0
    denied = decisions[3]
    assert 0 < denied.retry_after <= 60
    assert denied.reset == denied.retry_after
    assert 0 < decisions[2].reset <= 60


def test_denied_requests_are_not_counted(key):
    limits.acquire("test", key, 1, 0.5)
    for _ in range(5):
        assert not limits.acquire("test", key, 1, 0.5).allowed
    # Had the denials counted, the window would keep sliding and never free a slot.
    wait_for(lambda: limits.acquire("test", key, 1, 0.5).allowed, timeout=5, what="the slot to free")


def test_requests_leave_the_window_as_it_slides(key):
    assert limits.acquire("test", key, 2, 0.4).allowed
    assert limits.acquire("test", key, 2, 0.4).allowed
    assert not limits.acquire("test", key, 2, 0.4).allowed
    wait_for(lambda: limits.acquire("test", key, 2, 0.4).allowed, timeout=5, what="a slot to free")


def test_scopes_and_keys_count_separately(key):
    assert limits.acquire("test", key, 1, 60).allowed
    assert not limits.acquire("test", key, 1, 60).allowed
    assert limits.acquire("test", key + "-other", 1, 60).allowed
    assert limits.acquire("other-scope", key, 1, 60).allowed
    limits.reset("test", key + "-other")
    limits.reset("other-scope", key)


def test_a_lowered_limit_counts_what_is_already_in_the_window(key):
    for _ in range(5):
        limits.acquire("test", key, 10, 60)
    decision = limits.acquire("test", key, 3, 60)
    assert not decision.allowed
    assert decision.retry_after > 0


def test_the_limit_is_exact_under_concurrent_threads(key):
    allowed = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def hammer():
        start.wait()
        for _ in range(10):
            decision = limits.acquire("test", key, 25, 60)
            with lock:
                allowed.append(decision.allowed)

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 200
    assert allowed.count(True) == 25


def _acquire_many(key: str, times: int) -> int:
    return sum(limits.acquire("test", key, 30, 60).allowed for _ in range(times))


def test_the_limit_is_shared_by_processes(key):
    # Forked processes open their own connections: only Redis is shared.
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("fork")) as pool:
        counts = list(pool.map(_acquire_many, [key] * 4, [25] * 4))
    assert sum(counts) == 30
    assert not limits.acquire("test", key, 30, 60).allowed


def test_a_limit_needs_a_positive_limit_and_window(key):
    with pytest.raises(ValueError):
        limits.acquire("test", key, 0, 10)
    with pytest.raises(ValueError):
        limits.acquire("test", key, 5, 0)
