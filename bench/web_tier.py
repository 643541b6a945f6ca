"""The web tier side by side: each serving setup Offload ships, against the same three endpoints.

Endpoints (wrk, 50 connections, --duration seconds each, medians of --runs):
  accept  POST /api/v1/media/{id}/probe/ → 202 (the spine: job, event, queue row in one commit)
  peer    POST /api/bench/peer/{id}/probe/ → 202, the plain alternative mounted only here: a DRF view
          that reads the item with get_object_or_404 and calls django-q2's async_task
  bare    GET /bench/insert/, a view mounted only here that does one INSERT
  live    GET /healthz/live (no database)

Servers (2 processes each, on the bench database; rate limits lifted):
  one-port   uvicorn config.asgi (HTTP handed to Django's WSGI handler, a2wsgi, 8 threads)  — make run
  gunicorn   gunicorn config.wsgi, gthread, 2 workers × 8 threads                        — production HTTP
  django-asgi  uvicorn with Django's own ASGI handler: what Offload served before (reference)

It prints req/s and p50/p99 per endpoint, the accept/peer and accept/bare ratios per server, and the peak
number of PostgreSQL connections the bench database saw during each server's runs.

    .venv/bin/python bench/web_tier.py [--runs 2] [--duration 10] [--servers one-port,gunicorn,django-asgi]
    .venv/bin/python bench/web_tier.py --cost [--profile]   # in one process, no server: what a request costs

--cost times the accept and the bare requests in this process through Django's test client
(the whole middleware stack, no network, no contention): wall and CPU milliseconds per request,
the figure that sets the rate on a machine whose cores are the limit. --profile adds the
accept request's cProfile, by cumulative time.
"""

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.accept_latency import IDS_FILE, LUA_SCRIPT, make_fixtures

UNLIMITED = "100000000/60"
SERVERS = {
    "one-port": lambda port: [common.PYTHON, "-m", "uvicorn", "bench.web_tier_app:asgi", "--workers", "2",
                              "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--lifespan", "off",
                              "--log-level", "warning"],
    "gunicorn": lambda port: [common.PYTHON, "-m", "gunicorn", "bench.web_tier_app:wsgi", "--worker-class", "gthread",
                              "--workers", "2", "--threads", "8", "--bind", f"127.0.0.1:{port}",
                              "--log-level", "warning"],
    "django-asgi": lambda port: [common.PYTHON, "-m", "uvicorn", "bench.web_tier_app:django_asgi", "--workers", "2",
                                 "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--lifespan", "off",
                                 "--log-level", "warning"],
}  # fmt: skip
ENDPOINTS = {
    "accept": ("POST", "/api/v1/media/{id}/probe/"),
    "peer": ("POST", "/api/bench/peer/{id}/probe/"),
    "bare": ("GET", "/bench/insert/"),
    "live": ("GET", "/healthz/live"),
}


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict


def run_wrk(port: int, method: str, path: str, token: str, args: argparse.Namespace) -> Figures:
    command = [
        args.wrk,
        *("-t", "2", "-c", str(args.connections), "-d", f"{args.duration}s", "--timeout", "30s"),
        *("-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}"),
        *("--", token, str(IDS_FILE), method, path, "2"),
    ]
    data = common.wrk_figures(common.wrk_json(command, timeout=args.duration + 60))
    return Figures(data["requests"] / data["seconds"], data["p50_ms"], data["p99_ms"], data["statuses"])


def in_process_cost(token: str, ids: list[int], n: int, profile: bool) -> None:
    """Wall and CPU milliseconds per accept and per bare request, in this process."""
    from django.db import close_old_connections
    from django.test import Client, override_settings

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    requests = {
        "accept": lambda i: client.post(f"/api/v1/media/{ids[i % len(ids)]}/probe/"),
        "peer": lambda i: client.post(f"/api/bench/peer/{ids[i % len(ids)]}/probe/"),
        "bare": lambda i: client.get("/bench/insert/"),
    }
    print(f"\nin one process, Django's test client, {n} requests each after {n // 5} to warm up:")
    with override_settings(ROOT_URLCONF="bench.web_tier_app"):
        costs = {}
        for name, request in requests.items():
            common.truncate_queue_tables()
            for i in range(n, n + n // 5):
                close_old_connections()
                request(i)
            common.truncate_queue_tables()  # every measured accept makes a new job (202)
            statuses: dict[int, int] = {}
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                # A server closes old connections as each request starts; the test client does not.
                close_old_connections()
                status = request(i).status_code
                statuses[status] = statuses.get(status, 0) + 1
            costs[name] = ((time.perf_counter() - wall) * 1000 / n, (time.process_time() - cpu) * 1000 / n)
            print(f"  {name:6} {costs[name][0]:6.2f} ms wall  {costs[name][1]:6.2f} ms CPU per request  {statuses}")
        print(f"  accept/peer CPU: {costs['accept'][1] / costs['peer'][1]:.2f}x")
        print(f"  accept/bare CPU: {costs['accept'][1] / costs['bare'][1]:.1f}x")
        if profile:
            common.truncate_queue_tables()
            common.print_profile(
                f"the accept request ({n} requests)",
                lambda: [(close_old_connections(), requests["accept"](i)) for i in range(n)],
            )
    common.truncate_queue_tables()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--cost", action="store_true", help="only the in-process cost per request, no servers")
    parser.add_argument("--profile", action="store_true", help="with --cost: the accept request's profile")
    parser.add_argument("--requests", type=int, default=300, help="with --cost: requests per endpoint")
    args = parser.parse_args()

    common.set_up(
        "web_tier",
        OFFLOAD_RATE_API_USER=UNLIMITED,
        OFFLOAD_RATE_JOBS_USER=UNLIMITED,
        OFFLOAD_RATE_API_ANON=UNLIMITED,
        OFFLOAD_API_CACHE="0",
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_hit (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
    token, ids = make_fixtures(args.items)
    common.print_summary(common.machine_summary())
    if args.cost:
        in_process_cost(token, ids, args.requests, args.profile)
        return

    results: dict[str, dict[str, list[Figures]]] = {}
    peaks: dict[str, int] = {}
    with common.Children() as children:
        for n, name in enumerate(args.servers.split(",")):
            port = common.BASE_PORT + 10 + n
            server = children.start(f"web-tier-{name}", SERVERS[name](port))
            common.wait_for_http(f"http://127.0.0.1:{port}/healthz/live", server)
            results[name] = {endpoint: [] for endpoint in ENDPOINTS}
            with common.ConnectionSampler() as sampler:
                for _ in range(args.runs):
                    for endpoint, (method, path) in ENDPOINTS.items():
                        if endpoint in ("accept", "peer"):
                            # Every run starts with no jobs: each request makes a new one (202).
                            common.truncate_queue_tables()
                        figures = run_wrk(port, method, path, token, args)
                        results[name][endpoint].append(figures)
                        print(f"  {name:12} {endpoint:6} {figures.rps:8.0f} req/s  p50 {figures.p50_ms:7.1f} ms"
                              f"  p99 {figures.p99_ms:7.1f} ms  {figures.statuses}")  # fmt: skip
            peaks[name] = sampler.peak
            children.stop(server)

    print(f"\nmedians of {args.runs} runs, {args.connections} connections, {args.duration} s each:")
    print(f"{'server':12} {'endpoint':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, by_endpoint in results.items():
        med = {
            endpoint: (
                common.median([f.rps for f in runs]),
                common.median([f.p50_ms for f in runs]),
                common.median([f.p99_ms for f in runs]),
            )
            for endpoint, runs in by_endpoint.items()
        }
        for endpoint, (rps, p50, p99) in med.items():
            print(f"{name:12} {endpoint:8} {rps:8.0f} {p50:8.1f} {p99:8.1f}")
        for other in ("peer", "bare"):
            ratio = med["accept"][0] / med[other][0]
            p99_ratio = med["accept"][2] / med[other][2]
            print(f"{name:12} accept/{other}: {ratio:.0%} of the rate, p99 {p99_ratio:.2f}x")
        print(f"{name:12} peak PostgreSQL connections {peaks[name]}")
    common.truncate_queue_tables()


if __name__ == "__main__":
    main()
