"""Calling addresses people typed in (offload/lib/outbound.py): which are refused, and how the call is made."""

import re
import socket
import subprocess
import sys
import threading

import pytest

from offload import jobs
from offload.alerts import endpoints
from offload.alerts.models import Outcome
from offload.lib import outbound
from offload.models import JobPriority
from tests.support.cluster import BASE_DIR, wait_for
from tests.support.jobrunner import run_next
from tests.support.receivers import http_receiver


@pytest.mark.parametrize(
    ("address", "allowed_private", "refused"),
    [
        ("169.254.169.254", True, True),  # the cloud metadata service: always
        ("fe80::1", True, True),  # link-local IPv6: always
        ("100.100.100.200", True, True),  # another cloud's metadata address
        ("::ffff:169.254.169.254", True, True),  # the same, IPv4-mapped
        ("0.0.0.0", True, True),
        ("127.0.0.1", False, True),
        ("10.1.2.3", False, True),
        ("192.168.1.20", False, True),
        ("::1", False, True),
        ("127.0.0.1", True, False),
        ("192.168.1.20", True, False),
        ("93.184.215.14", False, False),
    ],
)
def test_which_addresses_are_refused(address, allowed_private, refused):
    assert (outbound.refusal(address, allowed_private) is not None) is refused


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "http://user:pw@example.com/", "http:///x"]
)
def test_only_plain_http_and_https_urls_are_accepted(url):
    with pytest.raises(outbound.Refused):
        outbound.parse(url)


def test_the_host_is_resolved_once_and_the_connection_goes_to_that_address(monkeypatch):
    """A name that would resolve elsewhere the second time (DNS rebinding) is still called at the checked address."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "169.254.169.254"])
    asked = []

    def rebinding(host, *args, **kwargs):
        if host != "hooks.example":
            return real(host, *args, **kwargs)
        asked.append(host)
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, args[0] if args else 80))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with http_receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        answer = outbound.post(f"http://hooks.example:{port}/in", b"{}", {}, timeout=5, allow_private=True)
    assert answer.status == 200 and asked == ["hooks.example"]
    (request,) = receiver.received
    assert request.headers["host"] == f"hooks.example:{port}" and request.path == "/in"


def test_an_attempt_gives_up_after_the_timeout(settings):
    settings.OFFLOAD_NOTIFY_TIMEOUT = 0.5
    release, answered = threading.Event(), threading.Event()

    def hold(request) -> None:
        # The receiver answers only once the test lets it: an attempt that waited for the
        # answer would find `answered` set.
        release.wait(30)
        answered.set()

    with http_receiver(on_request=hold) as receiver:
        try:
            with pytest.raises(outbound.SendFailed, match=r"(?i)timed? ?out"):
                outbound.post(receiver.url, b"{}", {}, timeout=settings.OFFLOAD_NOTIFY_TIMEOUT, allow_private=True)
            assert not answered.is_set()
        finally:
            release.set()


def test_only_the_first_kilobyte_of_an_answer_is_read():
    with http_receiver(answer=b"x" * 50_000) as receiver:
        answer = outbound.post(receiver.url, b"{}", {}, timeout=5, allow_private=True)
    assert answer.body == b"x" * 1024


@pytest.mark.django_db
def test_the_receiver_in_the_docs_verifies_a_real_delivery(alice, settings, tmp_path):
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True
    docs = (BASE_DIR / "docs" / "notifications.md").read_text()
    code = re.search(r"```python\n(.*?)```", docs, re.S).group(1)
    statements = [line for line in code.splitlines() if line.strip() and not line.startswith(("from ", "import "))]
    assert len(statements) <= 10
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint, secret = endpoints.create_endpoint(
        alice, {"agent": "webhook", "name": "docs", "url": f"http://127.0.0.1:{port}/", "events": ["job.failed"]}
    )
    script = tmp_path / "receiver.py"
    script.write_text(code.replace('"whsec_..."', repr(secret)).replace('("0.0.0.0", 8080)', f'("127.0.0.1", {port})'))
    proc = subprocess.Popen(
        [sys.executable, "-u", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: _accepts(port), timeout=20, what="the receiver from the docs to listen")
        job, _ = jobs.enqueue("system.noop", user=alice, priority=JobPriority.PERSON)
        jobs.fail(jobs.claim(job.pk), "boom")
        assert run_next("notify")
        row = endpoint.deliveries.get()
    finally:
        proc.kill()
        output = proc.communicate(timeout=10)[0]
    assert row.outcome == Outcome.SENT and row.status_code == 204, output
    assert f"job.failed {job.pk}" in output


def _accepts(port: int) -> bool:
    with socket.socket() as client:
        return client.connect_ex(("127.0.0.1", port)) == 0
