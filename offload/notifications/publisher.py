"""Publishing job events to the channel layer from sync code (views, workers).

`async_to_sync(group_send)` would open a new event loop, and with channels-redis a new
Redis connection, for every event. One long-lived loop in a daemon thread per process
keeps one connection pool and sends in order.
"""

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import get_channel_layer

from offload.access import event_recipients

log = logging.getLogger(__name__)

STAFF_GROUP = "jobs.staff"


def user_group(user_id: int) -> str:
    return f"jobs.user.{user_id}"


class _Publisher:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.pending: set = set()
        self.pending_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="offload-publisher", daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.ready.set()
        self.loop.run_forever()

    async def _send(self, groups: list[str], message: dict[str, Any]) -> None:
        layer = get_channel_layer()
        for group in groups:
            try:
                await layer.group_send(group, message)
            except Exception:
                log.exception("could not publish %s to %s", message.get("event"), group)

    def submit(self, groups: list[str], message: dict[str, Any]) -> None:
        future = asyncio.run_coroutine_threadsafe(self._send(groups, message), self.loop)
        with self.pending_lock:
            self.pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future) -> None:
        with self.pending_lock:
            self.pending.discard(future)


_publisher: _Publisher | None = None
_lock = threading.Lock()


def _get() -> _Publisher:
    global _publisher
    # A forked worker does not inherit the parent's thread: one publisher per process.
    if _publisher is None or _publisher.pid != os.getpid():
        with _lock:
            if _publisher is None or _publisher.pid != os.getpid():
                _publisher = _Publisher()
    return _publisher


def publish_job_event(seq: int, event: str, recipients: list[int], job: dict[str, Any]) -> None:
    """Send one committed JobEvent to the groups of those who may see it and the staff group; never blocks.

    The message names its recipients (requester and joiners), so each socket checks the
    same rule as the replay (offload.access.JobVisibility.admits).
    """
    groups = [STAFF_GROUP] + [user_group(user_id) for user_id in recipients]
    message = {"type": "job.event", "seq": seq, "event": event, "recipients": list(recipients), "job": job}
    _get().submit(groups, message)


def on_job_event(sender, event, **kwargs) -> None:
    """Subscriber to offload.jobs' job_event_committed (connected in OffloadConfig.ready())."""
    publish_job_event(event.seq, event.event, event_recipients(event), event.payload)
