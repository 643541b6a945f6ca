"""A lane's broker in a thread of its own, pausing once after an empty poll: does a commit wake it?"""

import threading

from offload.jobs import LaneORMBroker, lane_queue

# Far longer than any wake-up takes: a pause that runs this long was not woken.
LONG_PAUSE = 60.0


class ListeningLane(threading.Thread):
    """The lane's broker with its own connection: LISTENs, pauses once (`woken`: ended early), then polls (`taken`)."""

    def __init__(self, lane: str, pause: float) -> None:
        super().__init__(daemon=True)
        self.lane = lane
        self.pause = pause
        self.listening = threading.Event()
        self.woken: bool | None = None
        self.taken: list = []

    def run(self) -> None:
        from django.db import connection as own

        broker = LaneORMBroker(lane_queue(self.lane))
        try:
            broker.wait_for_work(0)  # LISTEN, as the lane's first empty poll does
            self.listening.set()
            self.woken = broker.wait_for_work(self.pause)
            self.taken = broker.dequeue() or []
        finally:
            own.close()


def listening(lane: str, pause: float = LONG_PAUSE) -> ListeningLane:
    """A started ListeningLane, once it listens."""
    thread = ListeningLane(lane, pause)
    thread.start()
    assert thread.listening.wait(LONG_PAUSE)
    return thread
