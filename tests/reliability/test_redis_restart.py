"""Redis restarted empty while jobs run: the API keeps accepting work, every job ends, live events resume."""

import time

import pytest

from tests.support.reliability.event_stream import EventStream
from tests.support.reliability.invariants import assert_consistent
from tests.support.reliability.stack import Stack

pytestmark = pytest.mark.slow


def test_jobs_and_live_events_survive_a_redis_restart(stack: Stack):
    stack.configure(OFFLOAD_JOB_STALE_SECONDS="3", OFFLOAD_Q_TIMEOUT="120", OFFLOAD_Q_RETRY="900")
    films = stack.media_folder("films", {"long.mp4": "long", **{f"{n}.mp4": "short" for n in "abcd"}})
    stack.start()
    alice = stack.api("alice")
    stream = EventStream(stack, stack.services.people["alice"])
    stream.start()
    assert stream.ready.wait(30)

    items = stack.scanned(alice, films)
    for profile in ("h264-480p", "audio-aac-128k"):
        alice.create_job(f"/api/v1/media/{items['long.mp4']}/transcode/", {"profile": profile})
    stack.wait_for_a_transcode_under_way()

    stack.services.redis.stop()
    before = len(stack.attempts)
    # Rate limits and the cache fail open: work is still accepted while Redis is away.
    for name in "abcd":
        alice.create_job(f"/api/v1/media/{items[f'{name}.mp4']}/transcode/", {"profile": "h264-480p"})
    assert [a.status for a in stack.attempts[before:]] == [202] * 4
    time.sleep(2)
    stack.services.redis.start()

    stack.wait_for_jobs_to_settle(180)
    # A transcode that met Redis away at each of its attempts may end failed, with its reason.
    assert_consistent(stack)
    stream.wait_until_caught_up()
    stream.stop()
    # The socket dropped with Redis; the client came back and resumed with nothing missing.
    assert stream.connections >= 2 and stream.resumes, stream.connections
    assert sorted(set(stream.seqs())) == stream.expected_seqs()
