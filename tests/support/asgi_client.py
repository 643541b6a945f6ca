"""The ASGI application driven in this process, so a test can patch what a consumer calls.

A small websocket client on asgiref's ApplicationCommunicator (channels.testing would pull
in daphne, which nothing else needs).
"""

import json
from typing import Any

from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.db import connections


class InProcessWebsocket(ApplicationCommunicator):
    def __init__(
        self,
        application,
        path: str,
        *,
        origin: str = "http://testserver",
        cookie: str | None = None,
        client: tuple[str, int] | None = None,
    ) -> None:
        path, _, query = path.partition("?")
        headers = [(b"origin", origin.encode()), (b"host", b"testserver")]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        scope = {
            "type": "websocket",
            "path": path,
            "query_string": query.encode(),
            "headers": headers,
            "subprotocols": [],
        }
        if client is not None:
            scope["client"] = client
        super().__init__(application, scope)

    async def connect(self, timeout: float = 5) -> bool:
        await self.send_input({"type": "websocket.connect"})
        return (await self.receive_output(timeout))["type"] == "websocket.accept"

    async def send_json_to(self, data: Any) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(data)})

    async def receive_json_from(self, timeout: float = 5) -> Any:
        message = await self.receive_output(timeout)
        assert message["type"] == "websocket.send", message
        return json.loads(message["text"])

    async def disconnect(self, code: int = 1000, timeout: float = 5) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
        # The consumer's queries ran in asgiref's database thread: its persistent connection
        # would otherwise outlive the test and keep the test database from being dropped.
        await database_sync_to_async(connections.close_all)()
