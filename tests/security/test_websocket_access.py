"""The websocket: origin, unauthenticated sockets, message rate, resumes, revoked access."""

import pytest
from rest_framework.authtoken.models import Token

from offload import jobs


def _ws(origin: str = "http://testserver", client=("203.0.113.7", 5000)):
    from config.asgi import application
    from tests.support.asgi_client import InProcessWebsocket

    return InProcessWebsocket(application, "/ws/events/", origin=origin, client=client)


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("http://testserver", True),
        ("http://testserver:80", True),
        ("http://testserver:9999", False),
        # Host without a port (TLS ended at a proxy): the Origin's default port is the one.
        ("https://testserver", True),
        ("https://testserver:8443", False),
        ("http://evil.example", False),
        ("null", False),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_the_websocket_origin_must_be_this_site_port_included(origin, accepted):
    import asyncio

    async def attempt() -> bool:
        socket = _ws(origin)
        try:
            return await socket.connect()
        finally:
            await socket.disconnect()

    assert asyncio.run(attempt()) is accepted


@pytest.mark.django_db(transaction=True)
def test_unauthenticated_sockets_are_limited_per_address(settings):
    import asyncio

    settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, "ws_anon": "2/60"}

    async def attempts() -> list[bool]:
        answers = []
        for address in ("203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2"):
            socket = _ws(client=(address, 4000))
            answers.append(await socket.connect())
            await socket.disconnect()
        return answers

    assert asyncio.run(attempts()) == [True, True, False, True]


@pytest.mark.django_db(transaction=True)
def test_a_socket_that_sends_too_many_messages_is_closed(alice, settings):
    import asyncio

    settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, "ws_message": "3/60"}
    token = Token.objects.create(user=alice).key

    async def flood() -> tuple[list[dict], dict]:
        socket = _ws()
        assert await socket.connect()
        await socket.send_json_to({"type": "auth", "token": token})
        await socket.receive_json_from()  # hello
        answers = []
        for _ in range(4):
            await socket.send_json_to({"type": "ping"})
        for _ in range(4):
            answers.append(await socket.receive_json_from())
        closed = await socket.receive_output(5)
        await socket.disconnect()
        return answers, closed

    answers, closed = asyncio.run(flood())
    assert [a["type"] for a in answers] == ["pong", "pong", "pong", "error"]
    assert "Too many messages" in answers[3]["detail"]
    assert closed == {"type": "websocket.close", "code": 4429}


@pytest.mark.django_db(transaction=True)
def test_a_resume_from_zero_is_bounded_and_says_there_is_more(staff, monkeypatch):
    import asyncio

    from offload.notifications import consumers, streams

    monkeypatch.setattr(streams, "REPLAY_PAGE", 2)
    monkeypatch.setattr(consumers, "RESUME_MAX_PAGES", 2)
    for n in range(6):
        jobs.enqueue("system.noop", params={"n": n}, user=staff)
    token = Token.objects.create(user=staff).key

    async def resume() -> list[dict]:
        socket = _ws()
        assert await socket.connect()
        await socket.send_json_to({"type": "auth", "token": token})
        await socket.receive_json_from()  # hello
        await socket.send_json_to({"type": "resume", "after": 0})
        got = [await socket.receive_json_from() for _ in range(5)]
        await socket.disconnect()
        return got

    got = asyncio.run(resume())
    assert [m["type"] for m in got] == ["job"] * 4 + ["resumed"]
    assert got[-1]["more"] is True and got[-1]["count"] == 4


@pytest.mark.parametrize("change", ["revoke_token", "lose_staff", "deactivate"])
@pytest.mark.django_db(transaction=True)
def test_an_open_socket_is_closed_when_its_access_is_revoked(staff, settings, change):
    import asyncio

    from asgiref.sync import sync_to_async

    settings.OFFLOAD_WS_HEARTBEAT_SECONDS = 0.2
    token = Token.objects.create(user=staff)

    def revoke() -> None:
        if change == "revoke_token":
            token.delete()
        elif change == "lose_staff":
            type(staff).objects.filter(pk=staff.pk).update(is_staff=False)
        else:
            type(staff).objects.filter(pk=staff.pk).update(is_active=False)

    async def watch() -> list[dict]:
        socket = _ws()
        assert await socket.connect()
        await socket.send_json_to({"type": "auth", "token": token.key})
        assert (await socket.receive_json_from())["type"] == "hello"
        assert (await socket.receive_json_from())["type"] == "heartbeat"
        await sync_to_async(revoke)()
        outputs = []
        while True:
            message = await socket.receive_output(5)
            outputs.append(message)
            if message["type"] == "websocket.close":
                break
        await socket.disconnect()
        return outputs

    outputs = asyncio.run(watch())
    assert outputs[-1] == {"type": "websocket.close", "code": 4401}
