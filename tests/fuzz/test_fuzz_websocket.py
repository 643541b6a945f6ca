"""`/ws/events/` fuzzed over a real uvicorn: every frame is answered, nothing closes, nothing crashes."""

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from offload.notifications.consumers import MAX_MESSAGE_BYTES
from tests.test_websocket import Client, token_of

pytestmark = pytest.mark.slow

FRAMES_PER_SOCKET = 500
HANDSHAKES = 25

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
# Objects that look like real messages: a known or unknown type, and any other fields.
message_like = st.builds(
    lambda kind, extra: {**extra, "type": kind},
    st.sampled_from(["ping", "resume", "auth", "hello", "job", "PING", ""]) | st.text(max_size=60),
    st.dictionaries(st.sampled_from(["after", "token", "seq", "job"]) | st.text(max_size=8), json_values, max_size=3),
)
resumes = st.builds(lambda after: {"type": "resume", "after": after}, json_values | st.integers(min_value=-(2**70)))


def nested(depth: int, opener: str, closer: str, leaf: str = "") -> str:
    return opener * depth + leaf + closer * depth


frames = st.one_of(
    json_values.map(json.dumps),
    message_like.map(json.dumps),
    resumes.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=2048),
    # Past the consumer's size limit, up to a megabyte.
    st.integers(min_value=MAX_MESSAGE_BYTES + 1, max_value=1_000_000).map(lambda n: "x" * n),
    st.integers(min_value=MAX_MESSAGE_BYTES + 1, max_value=1_000_000).map(lambda n: b"\x00" * n),
    # Deep nesting that still fits the size limit: deeper than Python's recursion limit.
    st.integers(min_value=1, max_value=MAX_MESSAGE_BYTES // 2).map(lambda d: nested(d, "[", "]")),
    st.integers(min_value=1, max_value=MAX_MESSAGE_BYTES // 6).map(lambda d: nested(d, '{"a":', "}", "0")),
)


def over_the_frame_limit(frame: str | bytes) -> bool:
    """The server reads frames of at most MAX_MESSAGE_BYTES (uvicorn's --ws-max-size): larger ones close the socket."""
    return len(frame if isinstance(frame, bytes) else frame.encode()) > MAX_MESSAGE_BYTES


def expected_answer(frame: str | bytes) -> str:
    """The type of message docs/api.md says this frame gets back on an authenticated socket."""
    if over_the_frame_limit(frame):
        return "closed"
    if isinstance(frame, bytes) or len(frame) > MAX_MESSAGE_BYTES:
        return "error"
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        return "error"
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "error"
    if message["type"] == "ping":
        return "pong"
    after = message.get("after")
    if message["type"] == "resume" and isinstance(after, int) and not isinstance(after, bool) and after >= 0:
        # Alice has no jobs: nothing to replay, straight to the end marker.
        return "resumed"
    return "error"


def next_answer(client: Client) -> dict[str, Any]:
    """The next message that answers a frame (heartbeats come on their own schedule)."""
    while True:
        message = client.recv(timeout=10)
        if message["type"] != "heartbeat":
            return message


def assert_server_healthy(server) -> None:
    assert server.proc.poll() is None, "uvicorn died"
    assert requests.get(f"{server.url}/healthz/live", timeout=5).status_code == 200
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


def test_every_frame_on_an_authenticated_socket_is_answered_and_the_socket_stays_open(asgi_server, alice):
    # The frames are fuzzed here, not the rate limits: this socket may send (and reconnect) freely.
    server = asgi_server(
        OFFLOAD_RATE_WS_MESSAGE="100000/10", OFFLOAD_RATE_WS_CONNECT="100000/60", OFFLOAD_RATE_WS_ANON="100000/60"
    )
    sockets = [Client(server, token=token_of(alice))]
    assert sockets[0].recv()["type"] == "hello"
    answered: list[str] = []

    @settings(
        max_examples=FRAMES_PER_SOCKET,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(frame=frames)
    def one_frame(frame: str | bytes) -> None:
        client = sockets[-1]
        client.send(frame)
        want = expected_answer(frame)
        if want == "closed":
            # Refused before it is read whole: the socket closes with 1009; a new one works.
            with pytest.raises(ConnectionClosed) as closed:
                next_answer(client)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            sockets.append(Client(server, token=token_of(alice)))
            assert sockets[-1].recv()["type"] == "hello"
            answered.append(want)
            return
        answer = next_answer(client)
        assert answer["type"] == want, (frame[:200], answer)
        if want == "error":
            assert isinstance(answer["detail"], str) and answer["detail"]
        answered.append(want)

    one_frame()
    # The socket, after everything: still authenticated and answering.
    client = sockets[-1]
    client.send({"type": "ping"})
    assert next_answer(client) == {"type": "pong"}
    assert {"error", "pong", "resumed"} <= set(answered)
    client.close()
    assert_server_healthy(server)


def test_a_frame_over_the_servers_size_limit_closes_only_that_socket(asgi_server, alice):
    server = asgi_server()
    client = Client(server, token=token_of(alice))
    assert client.recv()["type"] == "hello"
    # uvicorn's --ws-max-size (4 KiB, as `make run` starts it) is the protocol's limit: past it,
    # the socket closes with 1009.
    client.send("x" * (17 * 1024 * 1024))
    with pytest.raises(ConnectionClosed) as closed:
        next_answer(client)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    again = Client(server, token=token_of(alice))
    assert again.recv()["type"] == "hello"
    again.close()
    assert_server_healthy(server)


def test_garbage_before_authentication_closes_with_4401(asgi_server):
    # The frames are fuzzed here, not the per-address limit on unauthenticated sockets.
    server = asgi_server(OFFLOAD_RATE_WS_ANON="100000/60")
    closes: list[int] = []

    @settings(max_examples=HANDSHAKES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(frame=frames)
    def one_handshake(frame: str | bytes) -> None:
        with connect(f"{server.ws_url}/ws/events/", origin=server.url, open_timeout=10) as ws:
            ws.send(frame)
            with pytest.raises(ConnectionClosed) as closed:
                # Well inside the 5 s auth deadline: the frame itself must get the socket closed.
                ws.recv(timeout=3)
        # A frame over the server's size limit is refused by the protocol (1009) before the app reads it.
        expected = 1009 if over_the_frame_limit(frame) else 4401
        assert closed.value.rcvd is not None and closed.value.rcvd.code == expected, frame[:200]
        closes.append(closed.value.rcvd.code)

    one_handshake()
    assert closes and set(closes) <= {4401, 1009} and 4401 in closes
    assert_server_healthy(server)
