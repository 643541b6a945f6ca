"""The tests' one way to wait: poll a condition until it holds, with a timeout that fails loudly.

A fixed sleep is either too short on a busy machine or wasted on an idle one; a loop written by
hand forgets the timeout or the reason. Time that must pass (a TTL, a heartbeat going stale) is
not a condition and stays a sleep.
"""

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class HasLog(Protocol):
    def log(self) -> str: ...


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    what: str = "condition",
    cluster: HasLog | None = None,
    interval: float = 0.1,
    *,
    ignoring: tuple[type[BaseException], ...] = (),
    gives_up: Callable[[], bool] | None = None,
    logs: Callable[[], str] | None = None,
) -> T:
    """Poll until predicate() is truthy and answer its value; AssertionError naming `what` when it never is.

    `ignoring`: exceptions that count as "not yet" (a server still starting); `gives_up`: a check
    that ends the wait at once (the process being waited for died); `cluster`/`logs`: what to
    show when the wait fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ignoring:
            value = None
        if value:
            return value
        stopped = gives_up is not None and gives_up()
        if stopped or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = f"\n--- qcluster log ---\n{cluster.log()[-4000:]}" if cluster else ""
    detail += f"\n{logs()}" if logs else ""
    reason = "gave up" if stopped else f"timed out after {timeout:g} s"
    raise AssertionError(f"{reason} waiting for {what}{detail}")
