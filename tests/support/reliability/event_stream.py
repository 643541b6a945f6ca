"""A websocket client that behaves like a browser tab: it reconnects, then resumes from the last seq it saw."""

import contextlib
import json
import threading
import time

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from offload.jobs.kinds import internal_names
from tests.support.reliability.stack import Person, Stack
from tests.support.waiting import wait_for


class EventStream(threading.Thread):
    """Follows one user's /ws/events/ stream in a thread of its own, across server restarts."""

    def __init__(self, stack: Stack, person: Person) -> None:
        super().__init__(name=f"ws {person.username}", daemon=True)
        self.stack = stack
        self.person = person
        # The seq of the first hello: the stream is checked from there on.
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        # Every job event received, in arrival order (replayed and live alike).
        self.events: list[dict] = []
        self.connections = 0
        self.resumes: list[dict] = []
        self.errors: list[dict] = []
        self.ready = threading.Event()
        self._stopping = threading.Event()

    def run(self) -> None:
        """Connect, and connect again whenever the connection drops, until stopped."""
        while not self._stopping.is_set():
            try:
                self._follow()
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
                # Server away or restarting: try again shortly, as a browser's backoff would.
                time.sleep(0.2)

    def _follow(self) -> None:
        server = self.stack.web_server
        with connect(server.ws_url, origin=server.url, open_timeout=5, close_timeout=1) as ws:
            # A reconnecting client resumes as it authenticates: the replay then precedes live events.
            auth = {"type": "auth", "token": self.person.token}
            if self.last_seq is not None:
                auth["after"] = self.last_seq
            ws.send(json.dumps(auth))
            hello = json.loads(ws.recv(timeout=10))
            if hello.get("type") != "hello":
                self.errors.append(hello)
                time.sleep(1)
                return
            self.connections += 1
            if self.last_seq is None:
                self.first_seq = self.last_seq = hello["seq"]
            self.ready.set()
            opened = time.monotonic()
            while not self._stopping.is_set() and time.monotonic() - opened < self.hang_up_after():
                try:
                    message = json.loads(ws.recv(timeout=0.5))
                except TimeoutError:
                    continue
                if message["type"] == "job":
                    self.events.append(message)
                    self.last_seq = max(self.last_seq, message["seq"])
                elif message["type"] == "resumed":
                    self.resumes.append(message)
                elif message["type"] == "error":
                    self.errors.append(message)

    def hang_up_after(self) -> float:
        """Seconds this connection stays open before the client drops it itself (never, here)."""
        return float("inf")

    def stop(self) -> None:
        """Close the connection and end the thread."""
        self._stopping.set()
        self.join(10)

    def seqs(self) -> list[int]:
        """The seqs of the job events received, in arrival order."""
        return [event["seq"] for event in self.events]

    def expected_seqs(self) -> list[int]:
        """The user's stream in the JobEvent log after the first hello: what must have arrived."""
        if self.person.username == "staff":
            rows = self.stack.db.rows("SELECT seq FROM offload_jobevent WHERE seq > %s ORDER BY seq", [self.first_seq])
        else:
            rows = self.stack.db.rows(
                "SELECT e.seq FROM offload_jobevent e JOIN offload_job j ON j.id = e.job_id"
                " WHERE e.user_id = %s AND e.seq > %s AND j.kind <> ALL(%s) ORDER BY e.seq",
                [self.person.id, self.first_seq, internal_names()],
            )
        return [row[0] for row in rows]

    def wait_until_caught_up(self, timeout: float = 30.0) -> None:
        """Until every event of the log has arrived (or the deadline passes; the caller compares)."""
        expected = self.expected_seqs()
        with contextlib.suppress(AssertionError):
            wait_for(lambda: expected and (self.last_seq or 0) >= expected[-1], timeout, "the stream to catch up")
