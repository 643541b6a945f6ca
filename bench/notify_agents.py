"""Notifications to endpoints: a job's finish → the webhook received, and a slow endpoint beside probes.

1. Latency. A default-lane qcluster and a notify-lane qcluster serve the bench database; a
   signed-webhook endpoint points at a receiver in this process (a threaded HTTP server on
   127.0.0.1). N `system.noop` jobs are enqueued at a steady rate (paced). For each webhook:
       latency = time the receiver read the request - the job's `finished_at` (in the body)
   `finished_at` is taken in the worker just before the finishing transaction, which also
   writes the delivery row and its notify-lane task; so the figure holds that commit, the
   notify lane's wake-up, the claim, the signing and the HTTP request.
   Every body is checked afterwards with the Standard Webhooks verifier. The figure is split at
   the attempt's start in a notify worker (its DeliveryAttempt's `at`): before it, the commit,
   the lane's wake-up (a NOTIFY at commit, or its poll) and django-q2's hand-off; after it, the
   attempt.
2. A slow endpoint. M test deliveries (1,000 by default) go to a second receiver that answers
   after 1 s, which keeps every notify worker busy for M / workers seconds (the notify lane's
   workers are its bounded concurrency: OFFLOAD_LANE_NOTIFY_WORKERS). Meanwhile P no-op jobs
   run paced in the default lane (standing in for probes): their wait from queued to started
   is compared with the same P jobs run before the backlog. The script does not wait for the
   backlog to drain (M / workers seconds): it measures the probes while it is there.
3. One attempt's own cost: delivery.attempt() run in this process for 50 test deliveries, with
   the clusters stopped (what is left of 1. is the commit, the notify lane's wake-up and hand-off).

    .venv/bin/python bench/notify_agents.py [--jobs 200] [--rate 20] [--slow 1000] [--probes 200]
"""

import argparse
import json
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

USER = "bench-notify-agents"


def receiver(delay: float = 0.0) -> tuple[ThreadingHTTPServer, list[tuple[float, bytes, dict[str, str]]]]:
    """A local endpoint recording (receipt time, body, headers); answers 200 after `delay` seconds."""
    got: list[tuple[float, bytes, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append((time.time(), body, dict(self.headers)))
            if delay:
                time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def paced_noops(user, n: int, rate: float) -> list[int]:
    from offload import jobs
    from offload.models import JobPriority

    ids = []
    for _ in range(n):
        started = time.monotonic()
        # Distinct params: an identical active job would be answered instead of a new one.
        job, _ = jobs.enqueue("system.noop", params={"bench": time.time_ns()}, user=user, priority=JobPriority.PERSON)
        ids.append(job.pk)
        time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - started)))
    return ids


def wait_until(what: str, done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def waits_ms(ids: list[int]) -> list[float]:
    from offload.models import Job

    wait_until("the jobs to finish", lambda: Job.objects.filter(pk__in=ids, finished_at__isnull=True).count() == 0, 300)
    rows = Job.objects.filter(pk__in=ids).values_list("queued_at", "started_at")
    return [(started - queued).total_seconds() * 1000 for queued, started in rows]


def attempt_starts(webhook_ids: list[str]) -> dict[str, float]:
    """webhook-id → when its first attempt started in a worker (epoch seconds)."""
    from offload.alerts.models import DeliveryAttempt

    rows = DeliveryAttempt.objects.filter(delivery__webhook_id__in=webhook_ids, number=1)
    return {webhook_id: at.timestamp() for webhook_id, at in rows.values_list("delivery__webhook_id", "at")}


def attempt_costs(endpoint, n: int = 50) -> list[float]:
    """Milliseconds of delivery.attempt() run inline for n test deliveries (no queue, no poll)."""
    from offload.alerts import delivery, outbox

    costs = []
    for _ in range(n):
        (row,) = outbox.write([endpoint], "test", "", {"endpoint": {"id": endpoint.pk}}, noisy=False)
        started = time.perf_counter()
        delivery.attempt(row.pk)
        costs.append((time.perf_counter() - started) * 1000)
    return costs


def figures(values: list[float]) -> str:
    return f"p50 {common.percentile(values, 50):.1f} ms, p99 {common.percentile(values, 99):.1f} ms (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()

    common.set_up("notify_agents", OFFLOAD_NOTIFY_ALLOW_PRIVATE="1", OFFLOAD_NOTIFY_Q_NAME=f"{common.Q_NAME}-notify")
    from django.conf import settings
    from django.db import connection
    from standardwebhooks.webhooks import Webhook

    from offload.alerts import endpoints

    common.truncate_queue_tables()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE alerts_endpoint CASCADE")
    user, _ = common.user_with_token(USER)
    fast, fast_got = receiver()
    slow, slow_got = receiver(delay=1.0)
    hook, secret = endpoints.create_endpoint(
        user,
        {
            "agent": "webhook",
            "name": "bench",
            "url": f"http://127.0.0.1:{fast.server_port}/",
            "events": ["job.succeeded"],
        },
    )
    print(common.machine_summary())
    with common.Children() as children:
        common.start_qcluster(children, "notify-agents-default")
        notify_workers = settings.Q_CLUSTER["ALT_CLUSTERS"][settings.NOTIFY_Q_CLUSTER]["workers"]
        common.start_qcluster(children, "notify-agents-notify", env={"Q_CLUSTER_NAME": settings.NOTIFY_Q_CLUSTER})
        # Warm up both lanes (imports, connections) before measuring.
        paced_noops(user, 5, args.rate)
        wait_until("the warm-up webhooks", lambda: len(fast_got) >= 5, 60)
        fast_got.clear()

        ids = paced_noops(user, args.jobs, args.rate)
        wait_until("every webhook", lambda: len(fast_got) >= args.jobs, 120)
        latencies, to_attempt, attempt_to_received = [], [], []
        started_at = attempt_starts([headers["webhook-id"] for _, _, headers in fast_got])
        for received, body, headers in fast_got:
            document = Webhook(secret).verify(body, headers)
            finished = datetime.fromisoformat(document["data"]["job"]["finished_at"].replace("Z", "+00:00"))
            latencies.append((received - finished.timestamp()) * 1000)
            attempt = started_at[headers["webhook-id"]]
            to_attempt.append((attempt - finished.timestamp()) * 1000)
            attempt_to_received.append((received - attempt) * 1000)
        assert {json.loads(b)["data"]["job"]["id"] for _, b, _ in fast_got} == set(ids)
        print(f"1. finish → webhook received, {args.jobs} jobs at {args.rate:g}/s: {figures(latencies)}")
        print(f"   of which finish → the attempt starts in a notify worker: {figures(to_attempt)}")
        print(f"   and the attempt's start → received (claim, read, sign, POST): {figures(attempt_to_received)}")

        before = waits_ms(paced_noops(user, args.probes, args.rate))
        endpoints.update_endpoint(user, hook, {"paused": True})
        slow_hook, _ = endpoints.create_endpoint(
            user,
            {
                "agent": "webhook",
                "name": "slow",
                "url": f"http://127.0.0.1:{slow.server_port}/",
                "events": ["job.failed"],
            },
        )
        started = time.monotonic()
        for _ in range(args.slow):
            endpoints.send_test(slow_hook)
        queued = time.monotonic() - started
        during = waits_ms(paced_noops(user, args.probes, args.rate))
        backlog_left = args.slow - len(slow_got)
        print(
            f"2. {args.slow} deliveries to a 1 s endpoint ({notify_workers} notify workers), queued in {queued:.1f} s"
        )
        print(f"   default-lane job wait before the backlog: {figures(before)}")
        print(
            f"   default-lane job wait during the backlog: {figures(during)} ({backlog_left} deliveries still waiting)"
        )
    # With the clusters stopped, so none of them takes the attempts first.
    endpoints.update_endpoint(user, hook, {"paused": False})
    print(f"3. one attempt inline (claim, sign, POST, record), no queue: {figures(attempt_costs(hook))}")
    fast.shutdown()
    slow.shutdown()


if __name__ == "__main__":
    main()
