"""`/ws/events/`: a user's job events, live and resumable (docs/api.md, WebSocket)."""

import asyncio
import json
import logging
import math
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from offload import ratelimit, tokens
from offload.access import job_visibility
from offload.metrics import web as metrics
from offload.notifications import connections, streams
from offload.notifications.publisher import STAFF_GROUP, user_group

log = logging.getLogger(__name__)

# Redis commands this process's sockets may have in flight at once. redis-py's asyncio pools
# (channels-redis' and connections.py's) hold at most 100 connections each and raise
# MaxConnectionsError past that instead of waiting, so a burst of connects or disconnects (a
# deploy, a proxy restart) would fail half-way; the gate makes the burst queue instead.
REDIS_CONCURRENCY = 50
_gates: dict[int, asyncio.Semaphore] = {}


def redis_gate() -> asyncio.Semaphore:
    """This event loop's gate."""
    return connections.for_this_loop(_gates, lambda: asyncio.Semaphore(REDIS_CONCURRENCY))


CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_MANY = 4429
MAX_MESSAGE_BYTES = 4096
# Messages one socket may send per window (OFFLOAD_RATE_WS_MESSAGE); past it the socket is
# closed (4429). Each resume reads the event log: a client may not make it read without end.
MESSAGE_RATE_SCOPE = "ws_message"
# One resume replays at most this many pages; "resumed" then says "more": true and the
# client resumes again from the last seq it got.
RESUME_MAX_PAGES = 5


def _seq_or_none(value: Any) -> int | None:
    """A seq the client gave (`after`), or None when it gave none or something that is not one."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None


class JobEventsConsumer(AsyncWebsocketConsumer):
    user = None
    last_seq = 0
    deadline: asyncio.Task | None = None

    async def connect(self) -> None:
        metrics.ws_connected()
        self.user = None
        self.token_key: str | None = None
        self.session_key: str | None = None
        self.groups_joined: list[str] = []
        self.tasks: list[asyncio.Task] = []
        self.recent_messages: list[float] = []
        # Replays and live events both go out under this lock, so seqs leave in order.
        self.send_lock = asyncio.Lock()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # A socket that has yet to authenticate costs a slot and a timer: per address, limited.
            client = self.scope.get("client") or ("unknown", 0)
            decision = await database_sync_to_async(ratelimit.check)(ratelimit.limit_for("ws_anon"), f"ip:{client[0]}")
            if decision is not None and not decision.allowed:
                await self.close(code=CLOSE_TOO_MANY)
                return
        await self.accept()
        if user is not None and user.is_authenticated:
            session = self.scope.get("session")
            self.session_key = getattr(session, "session_key", None)
            query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
            await self.start(user, after=_seq_or_none(query.get("after", [None])[0]))
        else:
            self.deadline = asyncio.create_task(self.auth_deadline())
            self.tasks.append(self.deadline)

    async def auth_deadline(self) -> None:
        await asyncio.sleep(settings.OFFLOAD_WS_AUTH_TIMEOUT)
        if self.user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def start(self, user, after: int | None = None) -> None:
        """Join the user's stream; with `after`, first replay what they missed since that seq.

        Messages reach a consumer one at a time, so live events wait until this returns: a
        replay here goes out before them, in seq order. (A `resume` message sent after the
        hello cannot promise that: live events may already have gone out ahead of it.)
        """
        decision = await database_sync_to_async(ratelimit.check)(ratelimit.limit_for("ws_connect"), f"user:{user.pk}")
        if decision is not None and not decision.allowed:
            await self.error(f"Too many connection attempts; try again in {math.ceil(decision.retry_after)} s.")
            await self.close(code=CLOSE_TOO_MANY)
            return
        try:
            async with redis_gate():
                allowed = await connections.register(user.pk, self.channel_name)
        except RedisError:
            log.warning("connection count unavailable; letting user %s connect", user.pk)
            allowed = True
        if not allowed:
            await self.send_json(
                {
                    "type": "error",
                    "detail": f"Too many connections (at most {settings.OFFLOAD_WS_MAX_CONNECTIONS_PER_USER}).",
                }
            )
            await self.close(code=CLOSE_TOO_MANY)
            return
        self.user = user
        self.visibility = job_visibility(user)
        self.groups_joined = [STAFF_GROUP] if user.is_staff else [user_group(user.pk)]
        async with redis_gate():
            for group in self.groups_joined:
                await self.channel_layer.group_add(group, self.channel_name)
        # Joined first, then read where the stream stands: nothing can fall in between.
        self.last_seq = await database_sync_to_async(streams.latest_seq)(user)
        # What the client may ask to be replayed is what came before this hello; what came
        # after it has been (or will be) sent live on this connection.
        self.hello_seq = self.last_seq
        await self.send_json({"type": "hello", "user": user.pk, "staff": user.is_staff, "seq": self.last_seq})
        if after is not None:
            await self.resume(after)
        self.tasks.append(asyncio.create_task(self.heartbeat()))

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(settings.OFFLOAD_WS_HEARTBEAT_SECONDS)
            # A revoked token, a closed session, a deactivated user or a change of staff status
            # ends the socket: the client reconnects with what it may see now.
            allowed = await database_sync_to_async(streams.still_authorized)(
                self.user.pk, self.user.is_staff, token_key=self.token_key, session_key=self.session_key
            )
            if not allowed:
                await self.error("Your access changed; connect again.")
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return
            # A live message can be lost: a full channel (channels-redis drops past its
            # capacity) or a publisher whose process ended. A later event heals the gap by
            # replaying it, but the last ones before a quiet spell would wait for the next
            # event; each heartbeat catches up from the log instead.
            async with self.send_lock:
                await self.replay(self.last_seq)
                await self.send_json({"type": "heartbeat", "seq": self.last_seq})
            try:
                async with redis_gate():
                    await connections.register(self.user.pk, self.channel_name)
            except RedisError as exc:
                log.warning("could not refresh connection lease: %s", exc)

    async def disconnect(self, code: int) -> None:
        metrics.ws_disconnected()
        for task in self.tasks:
            task.cancel()
        async with redis_gate():
            # Each step on its own: a failed discard must not leave the connection counted.
            for group in self.groups_joined:
                try:
                    await self.channel_layer.group_discard(group, self.channel_name)
                except RedisError as exc:
                    log.warning("could not leave %s: %s", group, exc)
            if self.user is not None:
                try:
                    await connections.unregister(self.user.pk, self.channel_name)
                except RedisError as exc:
                    log.warning("could not unregister connection: %s", exc)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None and (bytes_data is not None or text_data is None or len(text_data) > MAX_MESSAGE_BYTES):
            # The first message must authenticate, and this one cannot.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if bytes_data is not None:
            await self.error("Binary frames are not supported; send JSON text.")
            return
        if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
            await self.error(f"Messages must be JSON text of at most {MAX_MESSAGE_BYTES} bytes.")
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            # RecursionError: nesting deeper than Python's recursion limit ("[" * 2000 fits
            # the size limit); uncaught, it killed the connection without a close frame.
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            if self.user is None:
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return
            await self.error('Expected a JSON object with a "type".')
            return
        kind = message["type"]
        if self.user is not None and not self.within_message_rate():
            limit = ratelimit.limit_for(MESSAGE_RATE_SCOPE)
            await self.error(f"Too many messages: at most {limit.limit} in {limit.window:g} s.")
            await self.close(code=CLOSE_TOO_MANY)
            return
        if self.user is None:
            # The first message must authenticate.
            await self.authenticate(message)
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "resume":
            await self.resume(message.get("after"))
        elif kind == "auth":
            await self.error("Already authenticated.")
        else:
            await self.error(f"Unknown message type {kind[:50]!r}; expected ping or resume.")

    def within_message_rate(self) -> bool:
        """Count this message; False once the socket sent more than its share in the window."""
        limit = ratelimit.limit_for(MESSAGE_RATE_SCOPE)
        now = asyncio.get_running_loop().time()
        self.recent_messages = [t for t in self.recent_messages if now - t < limit.window]
        self.recent_messages.append(now)
        return len(self.recent_messages) <= limit.limit

    async def authenticate(self, message: dict[str, Any]) -> None:
        # The deadline is for the client's first message; checking it may take longer on a busy
        # server, and a token that arrived in time is not refused for that.
        if self.deadline is not None:
            self.deadline.cancel()
        user = None
        if message.get("type") == "auth":
            user = await database_sync_to_async(tokens.user_for_token)(message.get("token"))
        if user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.token_key = message["token"]
        await self.start(user, after=_seq_or_none(message.get("after")))

    async def resume(self, after: Any) -> None:
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            await self.error('"after" must be a non-negative integer seq.')
            return
        async with self.send_lock:
            # Events sent live since the hello are not sent twice; what came before the hello
            # is replayed a bounded number of pages at a time.
            count, more = await self.replay(after, self.hello_seq, max_pages=RESUME_MAX_PAGES, advance=False)
            reply = {"type": "resumed", "after": after, "count": count, "seq": self.last_seq}
            if more:
                reply["more"] = True
            await self.send_json(reply)

    async def replay(
        self, after: int, upto: int | None = None, *, max_pages: int | None = None, advance: bool = True
    ) -> tuple[int, bool]:
        """Send the stream's events with after < seq <= upto, page by page: (how many went out, whether more remain).

        advance: the events are the live stream's (last_seq moves past them). The caller holds send_lock.
        """
        count = pages = 0
        while True:
            page = await database_sync_to_async(streams.events_between)(self.user, after, upto)
            for event in page:
                await self.send_json(event)
                count += 1
            pages += 1
            if page:
                after = page[-1]["seq"]
                if advance:
                    self.last_seq = max(self.last_seq, after)
            if len(page) < streams.REPLAY_PAGE:
                return count, False
            if max_pages is not None and pages >= max_pages:
                return count, True

    async def job_event(self, message: dict[str, Any]) -> None:
        """A live event from the channel layer; delivered in seq order, each once."""
        if self.user is None:
            return
        seq = message["seq"]
        async with self.send_lock:
            if seq <= self.last_seq:
                return
            visible = self.visibility.admits(message["recipients"], message["job"]["kind"])
            if seq == self.last_seq + 1 and visible:
                await self.send_json(streams.message(seq, message["event"], message["job"]))
            else:
                # Publishes from several processes may arrive out of order; the log is in
                # order, and every seq below a committed one is committed too, so the replay
                # reads up to the newest committed event: in a burst, the messages queued
                # behind this one are already sent and cost no query of their own.
                await self.replay(self.last_seq)
            self.last_seq = max(self.last_seq, seq)

    async def error(self, detail: str) -> None:
        await self.send_json({"type": "error", "detail": detail})

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))
