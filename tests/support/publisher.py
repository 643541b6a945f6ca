"""Waiting for the websocket publisher, in tests and benchmarks."""

import concurrent.futures

from offload.notifications import publisher


def flush_publisher(timeout: float = 5.0) -> None:
    """Wait until everything submitted so far has been sent."""
    running = publisher._get()
    with running.pending_lock:
        pending = list(running.pending)
    concurrent.futures.wait(pending, timeout=timeout)
