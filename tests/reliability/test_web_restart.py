"""The ASGI server restarted under its websocket clients: they reconnect, resume, and miss nothing."""

import json
import threading
import time

import pytest
from websockets.sync.client import connect

from tests.support.reliability.event_stream import EventStream
from tests.support.reliability.invariants import assert_consistent
from tests.support.reliability.stack import Stack

pytestmark = pytest.mark.slow


def test_websocket_clients_resume_across_web_restarts_and_miss_no_event(stack: Stack):
    people = stack.services.people
    alice, bob = stack.api("alice"), stack.api("bob")
    alices = stack.media_folder("alice", {"long.mp4": "long", "a.mp4": "short", "b.mp4": "short"})
    bobs = stack.media_folder("bob", {"long.mp4": "long", "c.mp4": "short"})
    stack.start()
    streams = [EventStream(stack, people[name]) for name in ("alice", "bob", "staff")]
    for stream in streams:
        stream.start()
        assert stream.ready.wait(30)

    libraries = {"alice": alice.library(alices), "bob": bob.library(bobs)}
    for client, name in ((alice, "alice"), (bob, "bob")):
        client.create_job(f"/api/v1/libraries/{libraries[name]}/scan/")
    stack.wait_until(
        lambda: (
            stack.db.value("SELECT count(*) FROM offload_job WHERE kind = 'library.scan' AND status = 'succeeded'") == 2
        ),
        60,
        "both scans",
    )
    items = {name: client.items(libraries[name]) for client, name in ((alice, "alice"), (bob, "bob"))}

    # Clients keep asking for work through both restarts; a request cut off is asked again
    # with the same Idempotency-Key.
    def more_work(client, name: str, files: list[str]) -> None:
        for profile in ("h264-480p", "audio-aac-128k"):
            for file in files:
                client.create_job(f"/api/v1/media/{items[name][file]}/transcode/", {"profile": profile})
                # Spread over both restarts, so some requests meet a server that is away.
                time.sleep(0.8)

    requesters = [
        threading.Thread(target=more_work, args=(alice, "alice", ["long.mp4", "a.mp4", "b.mp4"])),
        threading.Thread(target=more_work, args=(bob, "bob", ["long.mp4", "c.mp4"])),
    ]
    for thread in requesters:
        thread.start()
    stack.wait_for_a_transcode_under_way()
    stack.web_server.restart(crash=False)
    # Reconnected and resumed: a crash between a client's hello and its replay would leave it
    # a connection with no resume to count, through no fault of the server.
    stack.wait_until(
        lambda: all(stream.connections >= 2 and stream.resumes for stream in streams),
        30,
        "every client to reconnect and resume after the deploy",
    )
    stack.web_server.restart(crash=True)
    for thread in requesters:
        thread.join(120)
        assert not thread.is_alive()

    stack.wait_for_jobs_to_settle(180)
    tally = assert_consistent(stack)
    assert tally == {"succeeded": len(stack.accepted)}, tally
    for stream in streams:
        stream.wait_until_caught_up()
        stream.stop()
    for stream in streams:
        assert stream.connections >= 3 and len(stream.resumes) >= 2, (stream.person.username, stream.connections)
        assert not stream.errors, stream.errors
        # Nothing missing, nothing repeated, nothing foreign: exactly the user's stream in the log.
        assert sorted(stream.seqs()) == stream.expected_seqs(), stream.person.username


def test_a_resume_repeats_no_event_the_connection_already_received(stack: Stack):
    stack.web()
    stack.qcluster()
    staff = stack.services.people["staff"]
    # A job that reports progress every second (an internal kind: staff see it).
    stack.shell(
        "from django.contrib.auth.models import User; from offload import jobs; "
        "jobs.enqueue('system.sleep', params={'seconds': 10}, user=User.objects.get(username='staff'))"
    )
    stack.wait_until(lambda: stack.db.value("SELECT count(*) FROM offload_job WHERE progress > 0"), 30, "progress")
    server = stack.web_server
    with connect(server.ws_url, origin=server.url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "token": staff.token}))
        hello = json.loads(ws.recv(timeout=10))
        received = []
        # A live event arrives before the client's resume does (a round trip, stretched here).
        while not received:
            message = json.loads(ws.recv(timeout=10))
            if message["type"] == "job":
                received.append(message["seq"])
        # The client had seen everything up to the hello's seq before it reconnected.
        ws.send(json.dumps({"type": "resume", "after": hello["seq"]}))
        while (message := json.loads(ws.recv(timeout=10)))["type"] != "resumed":
            if message["type"] == "job":
                received.append(message["seq"])
    assert len(received) == len(set(received)), f"repeated: {received}"
