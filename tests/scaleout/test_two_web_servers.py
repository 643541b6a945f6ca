"""Two ASGI servers on one channel layer: a worker's job event reaches a client connected to either."""

import pytest

from offload.jobs import enqueue
from tests.test_websocket import Client, token_of

pytestmark = pytest.mark.slow


def job_events(client: Client, job_id: int, until: str) -> list[tuple[int, str]]:
    """(seq, event) of the job's events, read until the given event arrives."""
    client.until(lambda m: m["type"] == "job" and m["job"]["id"] == job_id and m["event"] == until, timeout=30)
    return [(m["seq"], m["event"]) for m in client.job_events() if m["job"]["id"] == job_id]


def test_a_workers_event_reaches_the_users_sockets_on_both_servers(asgi_server, qcluster, staff):
    # Two web hosts: separate processes that share only PostgreSQL and Redis (the channel layer).
    web_a, web_b = asgi_server(), asgi_server()
    on_a, on_b = Client(web_a, token=token_of(staff)), Client(web_b, token=token_of(staff))
    assert on_a.recv()["type"] == "hello" and on_b.recv()["type"] == "hello"
    qcluster()

    # "started" and "succeeded" are published by the worker process, not by either server.
    job, _ = enqueue("system.noop", params={"scale": "two web servers"})
    seen_on_a = job_events(on_a, job.pk, until="succeeded")
    seen_on_b = job_events(on_b, job.pk, until="succeeded")
    assert [event for _, event in seen_on_a] == ["queued", "started", "succeeded"]
    # The same stream, with the same seqs, whichever server the socket is on.
    assert seen_on_b == seen_on_a
    on_a.close()
    on_b.close()
