"""Many writers commit job events at once while clients connect, hang up and resume at random.

Each client must end with exactly its stream: every event it may see since its first hello,
once each, in seq order, with nothing missing. This is what numbering events at commit
(offload/jobs/events.py) promises.
"""

import random
import subprocess
import sys

import pytest

from tests.support.cluster import BASE_DIR
from tests.support.reliability.event_stream import EventStream
from tests.support.reliability.stack import Stack

pytestmark = pytest.mark.slow

WRITERS = 4
ROUNDS = 60
PEOPLE = ["alice", "bob", "load01", "load02"]


class ChurningEventStream(EventStream):
    """A client whose connection drops every second or so; it reconnects and resumes from its last seq."""

    def __init__(self, stack: Stack, person, seed: int) -> None:
        super().__init__(stack, person)
        self.rng = random.Random(seed)

    def hang_up_after(self) -> float:
        return self.rng.uniform(0.2, 1.5)


def test_concurrent_writers_and_churning_clients_each_end_with_exactly_their_stream(stack: Stack):
    # The churning clients reconnect far more often than a browser tab would.
    stack.configure(OFFLOAD_RATE_WS_CONNECT="10000/60")
    stack.web()
    people = stack.services.people
    stack.shell(f"from tests.support.reliability.writers import items_for; items_for({PEOPLE!r})")
    streams = [EventStream(stack, people["staff"]), EventStream(stack, people["alice"])]
    streams += [ChurningEventStream(stack, people[name], seed) for seed, name in enumerate([*PEOPLE, "staff"])]
    for stream in streams:
        stream.start()
    for stream in streams:
        assert stream.ready.wait(30)

    code = "from tests.support.reliability.writers import write; write({seed}, {people!r}, {rounds})"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "shell",
                "--no-imports",
                "-c",
                code.format(seed=seed, people=PEOPLE, rounds=ROUNDS),
            ],
            cwd=BASE_DIR,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(WRITERS)
    ]
    outputs = [writer.communicate(timeout=300) for writer in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0 and "WROTE" in out, err[-3000:]

    # The global order has no holes: every number was taken by a committed event.
    first, last, count = stack.db.rows("SELECT min(seq), max(seq), count(*) FROM offload_jobevent")[0]
    assert count > WRITERS * ROUNDS and last - first + 1 == count
    for stream in streams:
        stream.wait_until_caught_up(60)
        stream.stop()
    for stream in streams:
        expected = stream.expected_seqs()
        assert expected, stream.person.username
        # Exactly the stream: nothing missing, nothing twice, nothing out of order.
        assert stream.seqs() == expected, (stream.person.username, stream.connections)
        assert not stream.errors, stream.errors
    churned = [s for s in streams if isinstance(s, ChurningEventStream)]
    assert all(s.connections >= 3 and len(s.resumes) >= 2 for s in churned), [s.connections for s in churned]
