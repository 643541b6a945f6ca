"""The tests' one polling helper: it answers the first truthy value, and fails saying what it waited for."""

import pytest

from tests.support.waiting import wait_for


def counting_to(n: int):
    calls = []

    def predicate():
        calls.append(1)
        return len(calls) if len(calls) >= n else None

    return predicate, calls


def test_it_answers_the_first_truthy_value():
    predicate, calls = counting_to(3)
    assert wait_for(predicate, timeout=30, interval=0.01) == 3
    assert len(calls) == 3


def test_it_fails_naming_what_it_waited_for_and_the_logs():
    with pytest.raises(AssertionError, match=r"timed out after 0.05 s waiting for the moon\nlast lines"):
        wait_for(lambda: False, timeout=0.05, what="the moon", interval=0.01, logs=lambda: "last lines")


def test_the_exceptions_it_ignores_count_as_not_yet_and_others_fail_at_once():
    predicate, _ = counting_to(3)

    def flaky():
        if predicate() is None:
            raise ConnectionError("not up yet")
        return "up"

    assert wait_for(flaky, timeout=30, interval=0.01, ignoring=(ConnectionError,)) == "up"
    with pytest.raises(ZeroDivisionError):
        wait_for(lambda: 1 / 0, timeout=30, interval=0.01, ignoring=(ConnectionError,))


def test_it_gives_up_at_once_when_told_the_wait_is_hopeless():
    predicate, calls = counting_to(1000)
    with pytest.raises(AssertionError, match="gave up waiting for a dead server"):
        wait_for(predicate, timeout=600, what="a dead server", gives_up=lambda: True)
    assert len(calls) == 1
