"""Local receivers for notification tests: an HTTP server that records what it was sent, and SMTP.

Each stands in for an outside service (a webhook script, ntfy, Gotify, Discord, a mail server)
on 127.0.0.1, so the agents talk to a real socket.
"""

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.support.certs import Certificate


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the server answers, in turn (the last repeats), and everything it received."""

    statuses: list[int] = field(default_factory=lambda: [200])
    answer: bytes = b'{"ok": true}'
    # Called with each request before it is answered (a check, or a wait that holds it).
    on_request: Callable[[Received], None] | None = None
    # Extra answer headers (a redirect's Location).
    headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def next_status(self) -> int:
        index = min(len(self.received) - 1, len(self.statuses) - 1)
        return self.statuses[index]


@contextmanager
def http_receiver(**options) -> Iterator[Receiver]:
    """A threaded HTTP server on a free loopback port; `receiver.url` is its root."""
    receiver = Receiver(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            receiver.received.append(got)
            if receiver.on_request is not None:
                receiver.on_request(got)
            self.send_response(receiver.next_status())
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(receiver.answer)))
            self.end_headers()
            self.wfile.write(receiver.answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A client that gave up (a timeout test) is expected: no traceback for it.
    server.handle_error = lambda request, client_address: None
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: _Login | None = None

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class _Login:
    """aiosmtpd's authenticator: one user and password; every login tried is kept."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.tried: list[tuple[str, bool]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (login, password) == (self.username, self.password)
        self.tried.append((login, ok))
        return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(
    login: tuple[str, str] | None = None, tls: str = "none", certificate: Certificate | None = None
) -> Iterator[tuple[int, _Mailbox]]:
    """A real SMTP server (aiosmtpd) on a free loopback port; answer (port, mailbox).

    With `login` (user, password) it requires that login and keeps each login tried in
    `mailbox.logins` (over plain SMTP as a test may; under STARTTLS only once TLS is up). With `tls`
    "starttls" it requires STARTTLS before anything else, with "ssl" it speaks TLS from the
    first byte; either with `certificate`.
    """
    mailbox = _Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options: dict = {}
    if login is not None:
        mailbox.logins = _Login(*login)
        # aiosmtpd knows TLS only from STARTTLS: under "ssl" every byte is TLS already.
        options = {"authenticator": mailbox.logins, "auth_required": True, "auth_require_tls": tls == "starttls"}
    if tls != "none":
        assert certificate is not None, "a TLS server needs a certificate"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate.cert, certificate.key)
        if tls == "starttls":
            options |= {"tls_context": context, "require_starttls": True}
        else:
            options["ssl_context"] = context
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()
