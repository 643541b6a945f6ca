"""`/ws/events/` end to end: a real uvicorn, a real qcluster, a real websocket client."""

import asyncio
import json
import time

import pytest
from django.contrib.sessions.backends.cached_db import SessionStore
from django.db import transaction
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from config.asgi import application
from offload import tokens
from offload.jobs import enqueue
from offload.models import Job, JobEvent, Library, MediaItem
from offload.notifications import publisher, streams
from tests.support.asgi_client import InProcessWebsocket
from tests.support.cluster import media_lane, wait_for
from tests.support.media import make_video

pytestmark = pytest.mark.slow


class Client:
    """A websocket client that reads JSON messages with a deadline."""

    def __init__(self, server, *, token: str | None = None, cookie: str | None = None) -> None:
        headers = {"Cookie": cookie} if cookie else None
        self.ws = connect(f"{server.ws_url}/ws/events/", origin=server.url, additional_headers=headers, open_timeout=10)
        self.messages: list[dict] = []
        if token:
            self.send({"type": "auth", "token": token})

    def send(self, message) -> None:
        self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def recv(self, timeout: float = 15.0) -> dict:
        message = json.loads(self.ws.recv(timeout=timeout))
        self.messages.append(message)
        return message

    def until(self, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if predicate(message):
                return message
        raise AssertionError(f"no matching message within {timeout} s; got {self.messages[-8:]}")

    def job_events(self) -> list[dict]:
        return [m for m in self.messages if m["type"] == "job"]

    def close(self) -> None:
        self.ws.close()


def token_of(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def finished(job_id):
    return lambda m: m["type"] == "job" and m["job"]["id"] == job_id and m["event"] in ("succeeded", "failed")


@pytest.fixture
def clips(alice, bob, library_root):
    alice_lib = Library.objects.create(name="A", path=str(library_root), owner=alice)
    bob_dir = library_root / "bob"
    bob_lib = Library.objects.create(name="B", path=str(bob_dir), owner=bob)
    make_video(library_root / "a.mp4", seconds=8, size="320x180")
    make_video(bob_dir / "b.mp4", seconds=8, size="320x180")
    return (
        MediaItem.objects.create(library=alice_lib, relative_path="a.mp4", duration=8.0),
        MediaItem.objects.create(library=bob_lib, relative_path="b.mp4", duration=8.0),
    )


def test_a_job_requested_through_the_api_is_seen_queued_started_progress_succeeded(
    asgi_server, qcluster, alice, alice_api, clips
):
    server = asgi_server()
    qcluster(**media_lane())
    client = Client(server, token=token_of(alice))
    hello = client.recv()
    assert hello["type"] == "hello" and hello["user"] == alice.pk
    job_id = alice_api.post(f"/api/v1/media/{clips[0].pk}/transcode/", {"profile": "h264-480p"}, format="json").json()[
        "id"
    ]
    client.until(finished(job_id), timeout=60)
    events = [m["event"] for m in client.job_events()]
    assert events[0] == "queued" and events[1] == "started" and events[-1] == "succeeded"
    assert set(events[2:-1]) == {"progress"} and len(events) > 3
    seqs = [m["seq"] for m in client.job_events()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert client.job_events()[-1]["job"]["status"] == "succeeded"
    assert set(client.job_events()[-1]["job"]) >= {"id", "kind", "status", "progress", "target", "url"}
    client.close()


def test_bob_never_receives_alices_events(asgi_server, qcluster, alice, bob, staff, alice_api, bob_api, clips):
    server = asgi_server()
    qcluster(**media_lane())
    alices, bobs, staffs = (Client(server, token=token_of(u)) for u in (alice, bob, staff))
    for client in (alices, bobs, staffs):
        client.recv()
    jobs = []
    for profile in ("h264-480p", "audio-aac-128k"):
        jobs.append(
            alice_api.post(f"/api/v1/media/{clips[0].pk}/transcode/", {"profile": profile}, format="json").json()["id"]
        )
        jobs.append(
            bob_api.post(f"/api/v1/media/{clips[1].pk}/transcode/", {"profile": profile}, format="json").json()["id"]
        )
    wait_for(lambda: Job.objects.filter(pk__in=jobs, status="succeeded").count() == 4, timeout=120, what="four jobs")
    alices.until(finished(jobs[2]))
    bobs.until(finished(jobs[3]))
    staffs.until(lambda m: m["type"] == "job" and m["event"] == "succeeded" and m["job"]["id"] == max(jobs))
    assert {m["job"]["requested_by"] for m in alices.job_events()} == {alice.pk}
    assert {m["job"]["requested_by"] for m in bobs.job_events()} == {bob.pk}
    assert {m["job"]["requested_by"] for m in staffs.job_events()} == {alice.pk, bob.pk}
    for client in (alices, bobs, staffs):
        client.close()


def test_a_resume_after_a_disconnect_gets_exactly_the_missed_events(asgi_server, qcluster, alice, alice_api, clips):
    server = asgi_server()
    qcluster()
    first = Client(server, token=token_of(alice))
    before = first.recv()["seq"]
    first.close()
    job_id = alice_api.post(f"/api/v1/media/{clips[0].pk}/probe/").json()["id"]
    wait_for(lambda: Job.objects.get(pk=job_id).status == "succeeded", what="the probe")
    missed = list(JobEvent.objects.filter(user=alice, seq__gt=before).order_by("seq").values_list("seq", "event"))
    assert [e for _, e in missed][:3] == ["queued", "started", "succeeded"]

    again = Client(server, token=token_of(alice))
    assert again.recv()["type"] == "hello"
    again.send({"type": "resume", "after": before})
    done = again.until(lambda m: m["type"] == "resumed")
    assert [(m["seq"], m["event"]) for m in again.job_events()] == missed
    assert done["count"] == len(missed)
    # Live events carry on after the replay, with no gap and no repeat.
    second_id = alice_api.post(f"/api/v1/media/{clips[0].pk}/thumbnail/").json()["id"]
    again.until(finished(second_id), timeout=60)
    seqs = [m["seq"] for m in again.job_events()]
    assert seqs == sorted(set(seqs))
    logged = list(JobEvent.objects.filter(user=alice, seq__gt=before).order_by("seq").values_list("seq", flat=True))
    assert seqs == logged
    again.close()


def test_session_cookie_authenticates(asgi_server, alice):
    server = asgi_server()
    session = SessionStore()
    session["_auth_user_id"] = str(alice.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = alice.get_session_auth_hash()
    session.create()
    client = Client(server, cookie=f"sessionid={session.session_key}")
    assert client.recv()["user"] == alice.pk
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}
    client.close()


@pytest.mark.parametrize(
    "first_message",
    [{"type": "auth", "token": "not-a-token"}, {"type": "ping"}, "not json", {"type": "auth", "token": ["x"]}],
)
def test_bad_auth_closes_with_4401(asgi_server, first_message):
    server = asgi_server()
    client = Client(server)
    client.send(first_message)
    with pytest.raises(ConnectionClosed) as closed:
        client.recv()
    assert closed.value.rcvd.code == 4401


@pytest.mark.django_db(transaction=True)
def test_a_token_sent_in_time_is_not_refused_while_a_busy_server_checks_it(alice, settings, monkeypatch):
    settings.OFFLOAD_WS_AUTH_TIMEOUT = 0.2
    check_token = tokens.user_for_token

    def slow_check(token):
        time.sleep(0.6)  # longer than the deadline: a database under load
        return check_token(token)

    monkeypatch.setattr(tokens, "user_for_token", slow_check)
    token = token_of(alice)

    async def connect_and_authenticate() -> dict:
        client = await in_process_client(token)
        try:
            return await client.receive_json_from(timeout=5)
        finally:
            await client.disconnect()

    assert asyncio.run(connect_and_authenticate())["type"] == "hello"


async def in_process_client(token: str) -> InProcessWebsocket:
    """The ASGI application driven in this process (so a test can patch it), authenticating with token."""
    client = InProcessWebsocket(application, "/ws/events/")
    assert await client.connect()
    await client.send_json_to({"type": "auth", "token": token})
    return client


@pytest.mark.django_db(transaction=True)
def test_an_idle_connection_gets_heartbeats_carrying_the_last_seq(alice, settings):
    settings.OFFLOAD_WS_HEARTBEAT_SECONDS = 0.2
    token = token_of(alice)

    async def listen() -> tuple[dict, list[dict]]:
        client = await in_process_client(token)
        try:
            hello = await client.receive_json_from(timeout=5)
            return hello, [await client.receive_json_from(timeout=5) for _ in range(2)]
        finally:
            await client.disconnect()

    hello, beats = asyncio.run(listen())
    assert beats == [{"type": "heartbeat", "seq": hello["seq"]}] * 2


@pytest.mark.django_db(transaction=True)
def test_a_resume_longer_than_a_page_replays_every_missed_event(staff, monkeypatch):
    monkeypatch.setattr(streams, "REPLAY_PAGE", 2)
    for n in range(5):
        # An internal kind: only staff see it in their stream.
        enqueue("system.noop", params={"n": n}, user=staff)
    expected = list(JobEvent.objects.order_by("seq").values_list("seq", flat=True))
    token = token_of(staff)

    async def resume_from_the_start() -> tuple[dict, list[dict], dict]:
        client = await in_process_client(token)
        try:
            hello = await client.receive_json_from(timeout=5)
            await client.send_json_to({"type": "resume", "after": 0})
            replayed = []
            while (message := await client.receive_json_from(timeout=5))["type"] == "job":
                replayed.append(message)
            return hello, replayed, message
        finally:
            await client.disconnect()

    hello, replayed, resumed = asyncio.run(resume_from_the_start())
    assert len(expected) == 5
    assert [m["seq"] for m in replayed] == expected
    assert resumed == {"type": "resumed", "after": 0, "count": 5, "seq": hello["seq"]}


def test_no_auth_within_the_deadline_closes_with_4401(asgi_server):
    server = asgi_server(OFFLOAD_WS_AUTH_TIMEOUT="1")
    client = Client(server)
    with pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=10)
    assert closed.value.rcvd.code == 4401


def test_garbage_is_answered_with_errors_and_the_connection_lives_on(asgi_server, alice):
    # Frames up to the server's size limit (4 KiB); a larger one closes the socket (tests/fuzz).
    server = asgi_server()
    client = Client(server, token=token_of(alice))
    client.recv()
    for garbage in ["{", "[]", "42", '"text"', json.dumps({"no": "type"}), json.dumps({"type": "dance"}),
                    json.dumps({"type": "resume", "after": "yesterday"}), json.dumps({"type": "resume", "after": -1}),
                    b"\x00\xff binary", "x" * 4096, json.dumps({"type": "auth", "token": "again"})]:  # fmt: skip
        client.send(garbage)
        answer = client.recv()
        assert answer["type"] == "error", (garbage, answer)
        assert answer["detail"]
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}
    client.close()


def test_connections_per_user_are_capped_with_4429(asgi_server, alice):
    server = asgi_server(OFFLOAD_WS_MAX_CONNECTIONS_PER_USER="2")
    open_ones = [Client(server, token=token_of(alice)) for _ in range(2)]
    for client in open_ones:
        assert client.recv()["type"] == "hello"
    third = Client(server, token=token_of(alice))
    assert third.recv()["type"] == "error"
    with pytest.raises(ConnectionClosed) as closed:
        third.recv()
    assert closed.value.rcvd.code == 4429
    open_ones[0].close()

    def a_freed_slot_admits_another():
        # The server notices the close a moment later; until then the cap still counts it.
        client = Client(server, token=token_of(alice))
        if client.recv()["type"] == "hello":
            return True
        client.close()
        return False

    wait_for(a_freed_slot_admits_another, timeout=10, what="the closed connection's slot to be freed")


def test_a_foreign_origin_is_refused(asgi_server, alice):
    server = asgi_server()
    with pytest.raises(Exception) as refused:
        connect(f"{server.ws_url}/ws/events/", origin="http://evil.example", open_timeout=10).recv(timeout=5)
    assert "403" in str(refused.value) or isinstance(refused.value, ConnectionClosed)


def test_websocket_connects_are_rate_limited_per_user(asgi_server, alice):
    server = asgi_server(OFFLOAD_RATE_WS_CONNECT="2/60")
    for _ in range(2):
        client = Client(server, token=token_of(alice))
        assert client.recv()["type"] == "hello"
        client.close()
    third = Client(server, token=token_of(alice))
    assert "Too many connection attempts" in third.recv()["detail"]
    with pytest.raises(ConnectionClosed) as closed:
        third.recv()
    assert closed.value.rcvd.code == 4429


@pytest.mark.django_db(transaction=True)
def test_resuming_as_it_authenticates_replays_before_any_live_event_in_seq_order(staff):
    for n in range(3):
        enqueue("system.noop", params={"n": n}, user=staff)
    seqs = list(JobEvent.objects.order_by("seq").values_list("seq", flat=True))
    token = token_of(staff)

    async def reconnect_after_the_first() -> list[dict]:
        client = InProcessWebsocket(application, "/ws/events/")
        assert await client.connect()
        await client.send_json_to({"type": "auth", "token": token, "after": seqs[0]})
        messages = [await client.receive_json_from(timeout=5) for _ in range(4)]
        # A live event after the hello arrives after the replay, never between.
        await asyncio.to_thread(enqueue, "system.noop", params={"n": 9}, user=staff)
        messages.append(await client.receive_json_from(timeout=5))
        await client.disconnect()
        return messages

    hello, *replayed, resumed, live = asyncio.run(reconnect_after_the_first())
    assert hello["type"] == "hello" and hello["seq"] == seqs[-1]
    assert [m["seq"] for m in replayed] == seqs[1:]
    assert resumed == {"type": "resumed", "after": seqs[0], "count": 2, "seq": seqs[-1]}
    assert live["type"] == "job" and live["seq"] > seqs[-1]


@pytest.mark.django_db(transaction=True)
def test_a_session_client_resumes_with_after_in_the_url(staff):
    enqueue("system.noop", params={"n": 1}, user=staff)
    enqueue("system.noop", params={"n": 2}, user=staff)
    seqs = list(JobEvent.objects.order_by("seq").values_list("seq", flat=True))
    session = SessionStore()
    session["_auth_user_id"] = str(staff.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = staff.get_session_auth_hash()
    session.save()

    async def connect_with_after() -> list[dict]:
        client = InProcessWebsocket(
            application, f"/ws/events/?after={seqs[0]}", cookie=f"sessionid={session.session_key}"
        )
        assert await client.connect()
        messages = [await client.receive_json_from(timeout=5) for _ in range(3)]
        await client.disconnect()
        return messages

    hello, replayed, resumed = asyncio.run(connect_with_after())
    assert hello["type"] == "hello"
    assert replayed["seq"] == seqs[1]
    assert resumed["count"] == 1


@pytest.mark.django_db(transaction=True)
def test_an_event_whose_live_message_was_lost_arrives_with_the_next_heartbeat(alice, settings, monkeypatch):
    """A full channel or a publisher whose process ended loses a live message; the log still has it."""
    settings.OFFLOAD_WS_HEARTBEAT_SECONDS = 0.3
    library = Library.objects.create(name="A", path="/srv/alice", owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    token = token_of(alice)

    class LostMessages:
        def submit(self, groups, message) -> None:
            pass

    async def miss_the_live_message() -> tuple[dict, list[dict]]:
        client = await in_process_client(token)
        try:
            hello = await client.receive_json_from(timeout=5)
            monkeypatch.setattr(publisher, "_get", LostMessages)
            await asyncio.to_thread(enqueue, "media.enrich", target=item, user=alice)
            return hello, [await client.receive_json_from(timeout=5) for _ in range(2)]
        finally:
            await client.disconnect()

    hello, (caught_up, beat) = asyncio.run(miss_the_live_message())
    event = JobEvent.objects.get(job__requested_by=alice)
    assert caught_up["type"] == "job" and caught_up["seq"] == event.seq > hello["seq"]
    assert caught_up["event"] == "queued" and caught_up["job"]["kind"] == "media.enrich"
    assert beat == {"type": "heartbeat", "seq": event.seq}


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_interleaved_events_is_replayed_from_the_log_once_not_once_per_message(alice, bob, monkeypatch):
    items = {
        person: MediaItem.objects.create(
            library=Library.objects.create(name=person.username, path=f"/srv/{person.username}", owner=person),
            relative_path="a.mp4",
        )
        for person in (alice, bob)
    }
    reads = []
    read = streams.events_between

    def counted(*args, **kwargs):
        reads.append(args[1:])
        return read(*args, **kwargs)

    monkeypatch.setattr(streams, "events_between", counted)
    token = token_of(alice)

    def burst() -> None:
        # One transaction: every message is published after the one commit, all at once.
        with transaction.atomic():
            for n in range(10):
                for person in (alice, bob):
                    enqueue("media.enrich", target=items[person], params={"n": n}, user=person)

    async def listen() -> list[dict]:
        client = await in_process_client(token)
        try:
            await client.receive_json_from(timeout=5)
            await asyncio.to_thread(burst)
            return [await client.receive_json_from(timeout=5) for _ in range(10)]
        finally:
            await client.disconnect()

    received = asyncio.run(listen())
    expected = list(JobEvent.objects.filter(job__requested_by=alice).order_by("seq").values_list("seq", flat=True))
    assert [m["seq"] for m in received] == expected
    # Each of alice's events follows one of bob's, so none is the next seq of her stream: the
    # first message replays her whole burst, and the nine behind it are already sent.
    assert len(reads) == 1, reads
