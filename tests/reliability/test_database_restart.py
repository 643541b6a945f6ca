"""PostgreSQL restarted while jobs run: no accepted job is lost, none finishes twice."""

import threading
import time

import pytest

from tests.support.reliability.invariants import assert_consistent
from tests.support.reliability.stack import Stack

pytestmark = pytest.mark.slow

STALE_SECONDS = 3


def test_jobs_running_through_a_database_restart_all_finish(stack: Stack):
    stack.configure(OFFLOAD_JOB_STALE_SECONDS=str(STALE_SECONDS), OFFLOAD_Q_TIMEOUT="120", OFFLOAD_Q_RETRY="900")
    films = stack.media_folder("films", {"long.mp4": "long", **{f"{n}.mp4": "short" for n in "abcdef"}})
    stack.start()
    alice = stack.api("alice")
    items = stack.scanned(alice, films)
    for profile in ("h264-480p", "audio-aac-128k"):
        alice.create_job(f"/api/v1/media/{items['long.mp4']}/transcode/", {"profile": profile})
    stack.wait_for_a_transcode_under_way()

    # Clients keep asking for work while the server goes down and comes back.
    def more_work() -> None:
        for name in "abcdef":
            alice.create_job(f"/api/v1/media/{items[f'{name}.mp4']}/transcode/", {"profile": "h264-480p"})

    requester = threading.Thread(target=more_work)
    requester.start()
    running = [
        row[0]
        for row in stack.db.rows("SELECT id FROM offload_job WHERE kind = 'media.transcode' AND status = 'running'")
    ]
    stack.services.postgres.restart()
    requester.join(120)
    assert not requester.is_alive()

    time.sleep(STALE_SECONDS + 0.5)
    stack.reap_stale_jobs()
    stack.wait_for_jobs_to_settle(180)
    tally = assert_consistent(stack)
    assert tally == {"succeeded": len(stack.accepted)}, tally
    # The restart cut the running transcodes' connections mid-run: they ran again from the start.
    attempts = stack.db.rows("SELECT attempts FROM offload_job WHERE id = ANY(%s)", [running])
    assert max(n for (n,) in attempts) >= 2, attempts
