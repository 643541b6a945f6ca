"""Typesense restarted while jobs change items: searches degrade instead of failing, the index converges."""

import pytest

from tests.support.reliability.invariants import assert_consistent
from tests.support.reliability.stack import Stack

pytestmark = pytest.mark.slow


def test_the_index_converges_after_typesense_restarts_mid_run(stack: Stack):
    films = stack.media_folder("films", {"long.mp4": "long", **{f"{n}.mp4": "short" for n in "abcdef"}})
    stack.start()
    alice = stack.api("alice")
    items = stack.scanned(alice, films)
    stack.wait_until(lambda: not alice.get("/api/v1/search/?q=a")["degraded"], 30, "searches to use Typesense")
    alice.create_job(f"/api/v1/media/{items['long.mp4']}/transcode/", {"profile": "h264-480p"})

    stack.services.typesense.stop()
    # Edits, renditions and pipeline stages change items while the index is away.
    for name in "abc":
        alice.create_job(f"/api/v1/media/{items[f'{name}.mp4']}/transcode/", {"profile": "audio-aac-128k"})
        edit = alice.request("PATCH", f"/api/v1/media/{items[f'{name}.mp4']}/", json={"title": f"Edited {name}"})
        assert edit.status_code == 200, edit.text
    answer = alice.get("/api/v1/search/?q=Edited")
    assert answer["degraded"] is True
    assert sorted(hit["title"] for hit in answer["hits"]) == ["Edited a", "Edited b", "Edited c"]
    stack.wait_until(
        lambda: stack.db.value("SELECT count(*) FROM search_pendingsync WHERE attempts > 0"),
        30,
        "an index write to be refused",
    )

    stack.services.typesense.start()
    # Work goes on after the restart; the outbox retries what was refused meanwhile.
    for name in "def":
        alice.create_job(f"/api/v1/media/{items[f'{name}.mp4']}/transcode/", {"profile": "audio-aac-128k"})
    stack.wait_for_jobs_to_settle(180)
    tally = assert_consistent(stack)
    assert tally == {"succeeded": len(stack.accepted)}, tally
    answer = stack.wait_until(
        lambda: (a := alice.get("/api/v1/search/?q=Edited")) and not a["degraded"] and a, 30, "a search from Typesense"
    )
    assert sorted(hit["title"] for hit in answer["hits"]) == ["Edited a", "Edited b", "Edited c"]
