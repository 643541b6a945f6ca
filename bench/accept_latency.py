"""Accept latency: POST /api/v1/media/{id}/probe/ (the spine answers 202) against probing inline.

Two uvicorn servers (2 workers each, --no-access-log) on the bench database: the app itself on
BENCH_PORT (8100), and bench.inline_app on BENCH_PORT + 1, whose extra view runs ffprobe inside
the request. wrk drives 50 connections at each in turn, and at GET /healthz/live (no database)
as a yardstick for the machine. No qcluster runs: accepted jobs just queue, and the job tables
are truncated before every run. Requests spread over --items media items, so a run's requests
create new jobs (202) until the item list wraps; repeats answer 200 with the active job.

--web-db picks the web servers' database connections:
  pool         bench.pool_settings (the default): Django's psycopg pool, at most
               BENCH_POOL_MAX (4) connections per worker process.
  per-request  CONN_MAX_AGE=0: a new connection per request, one per request in flight.
  persistent   the app's CONN_MAX_AGE=600. Under ASGI each request runs in a thread of its own,
               so connections pile up until PostgreSQL refuses more (max_connections).
The last two can take most of a shared PostgreSQL's connections; see BENCHMARKS.md.

    .venv/bin/python bench/accept_latency.py [--runs 3] [--duration 10] [--web-db pool]
"""

import argparse
import asyncio
import importlib.util
import itertools
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

LUA_SCRIPT = Path(__file__).resolve().parent / "load.lua"
IDS_FILE = common.VAR / "item_ids.txt"
CLIP = common.LIBRARY_ROOT / "lib" / "source" / "clip.mp4"
SITE = common.VAR / "site"


@dataclass(frozen=True)
class Endpoint:
    """What one load run hits: "{id}" in the path becomes a media item id."""

    label: str
    port: int
    method: str
    path: str


@dataclass
class LoadResult:
    """One load run against one endpoint."""

    endpoint: Endpoint
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    statuses: dict[str, int]
    errors: dict[str, int] = field(default_factory=dict)
    peak_connections: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def status_text(self) -> str:
        text = " ".join(f"{code}={n}" for code, n in sorted(self.statuses.items()))
        failed = {k: v for k, v in self.errors.items() if v}
        return f"{text} errors={failed}" if failed else text


# --- Fixtures --------------------------------------------------------------------


def make_clip() -> Path:
    """A 3 s 320x180 H.264/AAC test clip, generated once with ffmpeg's lavfi sources."""
    from offload.lib.ffmpeg import ffmpeg_binary

    if CLIP.is_file() and CLIP.stat().st_size > 0:
        return CLIP
    CLIP.parent.mkdir(parents=True, exist_ok=True)
    common.run_checked(
        [
            ffmpeg_binary(),
            *("-y", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=3"),
            *("-f", "lavfi", "-i", "sine=duration=3"),
            *("-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"),
            str(CLIP),
        ],
        timeout=120,
    )
    return CLIP


def make_fixtures(n_items: int) -> tuple[str, list[int]]:
    """A user with a DRF token, a library and n_items media items (hard links to one clip)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from offload.lib.paths import resolve_library_path
    from offload.models import Library, MediaItem

    clip = make_clip()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    token, _ = Token.objects.get_or_create(user=user)
    library_dir = clip.parent.parent
    # update_or_create: another checkout may have left the library pointing at its own folder.
    library, _ = Library.objects.update_or_create(
        name="bench", owner=user, defaults={"path": str(resolve_library_path(str(library_dir)))}
    )
    items_dir = library_dir / "items"
    items_dir.mkdir(exist_ok=True)
    existing = set(MediaItem.objects.filter(library=library).values_list("relative_path", flat=True))
    new = []
    for i in range(n_items):
        name = f"item-{i:05d}.mp4"
        link = items_dir / name
        if not link.exists():
            # Hard links: thousands of distinct paths, one file's worth of disk.
            os.link(clip, link)
        if f"items/{name}" not in existing:
            new.append(MediaItem(library=library, relative_path=f"items/{name}", size=clip.stat().st_size))
    MediaItem.objects.bulk_create(new, batch_size=1000)
    ids = list(
        MediaItem.objects.filter(library=library, relative_path__startswith="items/")
        .order_by("relative_path")
        .values_list("pk", flat=True)[:n_items]
    )
    IDS_FILE.write_text("".join(f"{pk}\n" for pk in ids))
    return token.key, ids


# --- What one request costs, in-process -------------------------------------------


def request_anatomy(token: str, item_id: int) -> None:
    """Round trips to PostgreSQL per request: spine 202, spine 200 (deduplicated), inline."""
    from django.db import close_old_connections
    from django.test import Client, override_settings

    from offload.lib import ffmpeg

    common.truncate_queue_tables()
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    cases = [
        ("spine, new job (202)", "/api/v1/media/{}/probe/", "config.urls"),
        ("spine, active job again (200)", "/api/v1/media/{}/probe/", "config.urls"),
        ("inline probe (200)", "/api/v1/media/{}/probe-inline/", "bench.inline_urls"),
    ]
    print("\nround trips to PostgreSQL per request (in-process, Django test client):")
    for label, url, urlconf in cases:
        with override_settings(ROOT_URLCONF=urlconf), common.trace_sql() as trace:
            # The test client skips request_started's close_old_connections(); a server runs it.
            close_old_connections()
            response = client.post(url.format(item_id))
        print(f"  {label}: HTTP {response.status_code}")
        print(common.format_trace(trace))
    common.truncate_queue_tables()

    durations = []
    for _ in range(20):
        started = time.perf_counter()
        ffmpeg.probe(CLIP)
        durations.append((time.perf_counter() - started) * 1000)
    print(f"  ffprobe of the clip alone, one at a time: p50 {common.median(durations):.1f} ms")


# --- Load generation ----------------------------------------------------------------


def run_wrk(endpoint: Endpoint, token: str, args: argparse.Namespace) -> LoadResult:
    """One wrk run; the Lua script reports totals, percentiles and status counts as JSON."""
    command = [
        args.wrk,
        *("-t", str(args.wrk_threads), "-c", str(args.connections), "-d", f"{args.duration}s"),
        *("--timeout", "30s", "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{endpoint.port}"),
        *("--", token, str(IDS_FILE), endpoint.method, endpoint.path, str(args.wrk_threads)),
    ]
    data = common.wrk_json(command, timeout=args.duration + 60)
    return LoadResult(
        endpoint=endpoint,
        **common.wrk_figures(data),
    )


async def _httpx_load(endpoint: Endpoint, token: str, ids: list[int], args: argparse.Namespace) -> LoadResult:
    import httpx

    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    counter = itertools.count()
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{endpoint.port}",
        headers={"Authorization": f"Token {token}"},
        limits=limits,
        timeout=30,
    ) as client:
        started = time.perf_counter()
        deadline = started + args.duration

        async def one_connection() -> None:
            while time.perf_counter() < deadline:
                url = endpoint.path.replace("{id}", str(ids[next(counter) % len(ids)]))
                sent = time.perf_counter()
                try:
                    response = await client.request(endpoint.method, url)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[str(response.status_code)] += 1

        await asyncio.gather(*(one_connection() for _ in range(args.connections)))
        elapsed = time.perf_counter() - started
    return LoadResult(
        endpoint=endpoint,
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=common.percentile(latencies, 50) * 1000,
        p90_ms=common.percentile(latencies, 90) * 1000,
        p99_ms=common.percentile(latencies, 99) * 1000,
        statuses=dict(statuses),
        errors=dict(errors),
    )


def run_load(endpoint: Endpoint, token: str, ids: list[int], args: argparse.Namespace) -> LoadResult:
    """One measured run with the chosen load generator, sampling the database connections meanwhile."""
    with common.ConnectionSampler() as sampler:
        if args.loadgen == "wrk":
            result = run_wrk(endpoint, token, args)
        else:
            result = asyncio.run(_httpx_load(endpoint, token, ids, args))
    result.peak_connections = sampler.peak
    return result


# --- Servers -------------------------------------------------------------------------


def server_env(web_db: str) -> dict[str, str]:
    """The web servers' environment for a --web-db choice."""
    if web_db == "per-request":
        return {"CONN_MAX_AGE": "0"}
    if web_db == "pool":
        sys.path.insert(0, str(SITE))
        if importlib.util.find_spec("psycopg_pool") is None:
            raise SystemExit(f"--web-db pool needs psycopg_pool: .venv/bin/pip install --target {SITE} psycopg-pool")
        pythonpath = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
        return {"DJANGO_SETTINGS_MODULE": "bench.pool_settings", "PYTHONPATH": pythonpath}
    return {}


def check_endpoint(endpoint: Endpoint, token: str, item_id: int, expected: int) -> None:
    """One request before any load: a server answering errors would measure nothing useful."""
    url = f"http://127.0.0.1:{endpoint.port}{endpoint.path.replace('{id}', str(item_id))}"
    data = b"" if endpoint.method == "POST" else None
    request = urllib.request.Request(
        url, data=data, method=endpoint.method, headers={"Authorization": f"Token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    if status != expected:
        raise SystemExit(f"{endpoint.label}: {url} answered {status}, not {expected}: {body[:500]!r}")


def start_server(
    children: common.Children, name: str, app: str, port: int, args: argparse.Namespace
) -> subprocess.Popen:
    """uvicorn with the given app, workers and no access log, in its own process group."""
    return children.start(
        name,
        [
            common.PYTHON,
            *("-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", str(args.workers), "--no-access-log", "--lifespan", "off", "--log-level", "warning"),
        ],
        env=server_env(args.web_db),
    )


# --- Main --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every option has a default that reproduces BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load per endpoint before the first run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--items", type=int, default=10_000, help="media items the requests spread over")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--web-db", choices=("pool", "per-request", "persistent"), default="pool")
    parser.add_argument("--loadgen", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--wrk-threads", type=int, default=1)
    return parser.parse_args(argv)


def print_medians(results: dict[str, list[LoadResult]]) -> dict[str, tuple[float, float, float]]:
    """Median req/s, p50 and p99 per endpoint, with the status counts of all runs."""
    medians = {}
    for key, runs in results.items():
        rps = common.median([r.rps for r in runs])
        p50 = common.median([r.p50_ms for r in runs])
        p99 = common.median([r.p99_ms for r in runs])
        statuses: Counter[str] = Counter()
        for r in runs:
            statuses.update(r.statuses)
        medians[key] = (rps, p50, p99)
        print(
            f"  {runs[0].endpoint.label:<22} {rps:>7.1f} req/s   p50 {p50:>7.1f} ms   p99 {p99:>7.1f} ms   "
            f"peak db conns {max(r.peak_connections for r in runs):>3}   "
            f"statuses: {' '.join(f'{c}={n}' for c, n in sorted(statuses.items()))}"
        )
    return medians


def main(argv: list[str] | None = None) -> int:
    """Set up, measure every endpoint --runs times, print every run and the medians."""
    args = parse_args(argv)
    began = time.perf_counter()
    common.configure_environment()
    common.install_signal_handlers()
    env = server_env(args.web_db)
    common.ensure_database()
    from offload.models import Job

    token, ids = make_fixtures(args.items)
    print(f"accept latency ({time.strftime('%Y-%m-%d %H:%M')}):")
    common.print_summary(common.machine_summary())
    print(
        f"  load                {args.loadgen}, {args.connections} connections, {args.duration} s per run, "
        f"{args.runs} runs, requests spread over {len(ids)} items"
    )
    print(f"  web servers         uvicorn, {args.workers} workers each, --no-access-log, --web-db {args.web_db} {env}")
    if args.loadgen == "httpx":
        print("  note: one asyncio process can itself cap the rate on 2 cores; wrk is the reference")
    if args.web_db == "persistent":
        print("  WARNING: CONN_MAX_AGE=600 under ASGI opens connections until PostgreSQL refuses more")
    request_anatomy(token, ids[0])

    spine_port, inline_port = common.BASE_PORT, common.BASE_PORT + 1
    endpoints = {
        "spine": Endpoint("spine accept (ASGI)", spine_port, "POST", "/api/v1/media/{id}/probe/"),
        "inline": Endpoint("inline probe (ASGI)", inline_port, "POST", "/api/v1/media/{id}/probe-inline/"),
        "hello": Endpoint("GET /healthz/live", spine_port, "GET", "/healthz/live"),
    }
    results: dict[str, list[LoadResult]] = {key: [] for key in endpoints}
    jobs_created: list[int] = []
    with common.Children() as children:
        spine = start_server(children, "uvicorn-spine", "config.asgi:application", spine_port, args)
        inline = start_server(children, "uvicorn-inline", "bench.inline_app:application", inline_port, args)
        common.wait_for_http(f"http://127.0.0.1:{spine_port}/healthz/live", spine)
        common.wait_for_http(f"http://127.0.0.1:{inline_port}/healthz/live", inline)

        check_endpoint(endpoints["spine"], token, ids[-1], 202)
        check_endpoint(endpoints["inline"], token, ids[-1], 200)
        check_endpoint(endpoints["hello"], token, ids[-1], 200)
        # Warm both servers (imports, URL resolvers, pools) before measuring.
        warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
        for endpoint in endpoints.values():
            run_load(endpoint, token, ids, warm)

        print(f"\nload average before the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("run  endpoint                 req/s   p50 ms   p90 ms   p99 ms  db conns  statuses")
        for run in range(1, args.runs + 1):
            common.truncate_queue_tables()
            for key, endpoint in endpoints.items():
                result = run_load(endpoint, token, ids, args)
                results[key].append(result)
                if key == "spine":
                    jobs_created.append(Job.objects.count())
                print(
                    f"{run:<4} {endpoint.label:<22} {result.rps:>7.1f} {result.p50_ms:>8.1f} "
                    f"{result.p90_ms:>8.1f} {result.p99_ms:>8.1f} {result.peak_connections:>9}  "
                    f"{result.status_text()}"
                )
        common.truncate_queue_tables()
        print(f"load average after the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    print(f"jobs in the database after each spine run (one per 202): {jobs_created}")
    print(f"\nmedian of {args.runs} runs:")
    medians = print_medians(results)
    (s_rps, s_p50, s_p99), (i_rps, i_p50, i_p99) = medians["spine"], medians["inline"]
    h_rps = medians["hello"][0]
    print(
        f"  ratio spine/inline: {s_rps / i_rps:.1f}x the requests/s; "
        f"latency {i_p50 / s_p50:.1f}x lower at p50, {i_p99 / s_p99:.1f}x at p99"
    )
    print(f"  spine accept runs at {s_rps / h_rps:.0%} of the no-database GET's rate on the same server")
    print(f"\nfinished in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
