"""The Redis circuit breaker: one state per name, shared by every process."""

import uuid

import pytest

from offload.lib.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from tests.support.cluster import wait_for


@pytest.fixture
def name():
    value = f"test:{uuid.uuid4().hex}"
    yield value
    CircuitBreaker(value).reset()


def test_it_opens_after_the_threshold_of_consecutive_failures(name):
    breaker = CircuitBreaker(name, failure_threshold=3, cooldown=60)
    assert breaker.record_failure().state == CLOSED
    assert breaker.record_failure().state == CLOSED
    assert breaker.allow().allowed
    assert breaker.record_failure().state == OPEN
    refused = breaker.allow()
    assert not refused.allowed
    assert refused.state == OPEN
    assert 0 < refused.retry_after <= 60


def test_a_success_resets_the_count_of_failures(name):
    breaker = CircuitBreaker(name, failure_threshold=3, cooldown=60)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state() == CLOSED


def test_instances_with_one_name_share_the_state(name):
    CircuitBreaker(name, failure_threshold=1, cooldown=60).record_failure()
    assert not CircuitBreaker(name, failure_threshold=1, cooldown=60).allow().allowed


def test_after_the_cooldown_one_trial_at_a_time_goes_through(name):
    breaker = CircuitBreaker(name, failure_threshold=1, cooldown=0.3, trial_timeout=60)
    breaker.record_failure()
    wait_for(lambda: breaker.state() == HALF_OPEN, timeout=5, what="the cooldown to end")
    first = breaker.allow()
    assert first.allowed and first.state == HALF_OPEN
    second = breaker.allow()
    assert not second.allowed and second.state == HALF_OPEN
    breaker.record_success()
    assert breaker.state() == CLOSED
    assert breaker.allow().allowed


def test_a_failed_trial_opens_it_again_for_a_full_cooldown(name):
    breaker = CircuitBreaker(name, failure_threshold=5, cooldown=0.3)
    for _ in range(5):
        breaker.record_failure()
    wait_for(lambda: breaker.state() == HALF_OPEN, timeout=5, what="the cooldown to end")
    assert breaker.allow().allowed
    assert breaker.record_failure().state == OPEN  # one failure is enough in half-open
    assert not breaker.allow().allowed


def test_failures_while_open_do_not_extend_it(name):
    breaker = CircuitBreaker(name, failure_threshold=1, cooldown=60)
    breaker.record_failure()
    before = breaker.allow().retry_after
    assert breaker.record_failure().state == OPEN
    assert breaker.allow().retry_after <= before


def test_hold_open_refuses_calls_for_the_time_asked(name):
    breaker = CircuitBreaker(name, failure_threshold=5, cooldown=1)
    held = breaker.hold_open(30)
    assert held.state == OPEN
    refused = breaker.allow()
    assert not refused.allowed
    assert 25 < refused.retry_after <= 30
    # A shorter hold never shortens a longer one.
    breaker.hold_open(1)
    assert breaker.allow().retry_after > 25


def test_a_hold_is_a_pause_not_a_failure(name):
    breaker = CircuitBreaker(name, failure_threshold=2, cooldown=60)
    breaker.hold_open(0.3)
    # A call that was already under way succeeding does not cut the pause short.
    breaker.record_success()
    assert breaker.state() == OPEN
    wait_for(lambda: breaker.state() == CLOSED, timeout=5, what="the hold to end")
    assert breaker.allow().allowed
    assert breaker.record_failure().state == CLOSED  # no half-open trial left behind
