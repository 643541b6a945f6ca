"""API response cache and rate limiter: what each saves or costs per request.

1. `GET /api/v1/media/` (the first page of 50 of --items items, owned by one user) from uvicorn
   (2 workers, Django's psycopg pool) with the response cache on (OFFLOAD_API_CACHE=1) and off
   (0). wrk measures latency with 1 connection (one request at a time) and throughput with 50.
   With the cache on, every request after the first is a hit: nothing writes meanwhile, and the
   X-Cache header of every response is counted to show it.
2. `offload.lib.limits.acquire` called --calls times in this process (keys rotate over 100 users, a
   limit that never refuses), against the same Lua script called directly (its Script object
   built once) and a plain Redis GET: p50/p99 in microseconds.
3. `GET /api/v1/profiles/` (the cheapest authenticated API GET) with the rate limiter and
   without it: the same uvicorn setup, one server with config.settings and one with
   bench.nolimit_settings (RateLimitMiddleware removed), both with the cache on.

Every server gets OFFLOAD_RATE_API_USER=100000000/1: never refused, and the limiter's sorted set
for the one user holds about one second of requests (a real 300/60 user's holds at most 300).
In-process, the script also prints the round trips to PostgreSQL of one cached and one uncached
list request, and their cost without HTTP (Django's test client).

    .venv/bin/python bench/cache.py [--runs 3] [--duration 10] [--latency-duration 5] [--items 300]
"""

import argparse
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

LUA_SCRIPT = common.VAR / "cache.lua"
# wrk: GET with a DRF token; prints totals, latency percentiles (µs), status and X-Cache counts as JSON.
LUA = r"""
local threads = {}
statuses = {}
xcache = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.headers["Authorization"] = "Token " .. args[1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local x = headers["X-Cache"] or headers["x-cache"] or "none"
  xcache[x] = (xcache[x] or 0) + 1
end

local function merge(name)
  local out = {}
  for _, thread in ipairs(threads) do
    for k, n in pairs(thread:get(name)) do
      out[tostring(k)] = (out[tostring(k)] or 0) + n
    end
  end
  local parts = {}
  for k, n in pairs(out) do
    table.insert(parts, string.format('"%s": %d', k, n))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, ' ..
    '"max_us": %.0f, "errors": %d, "statuses": %s, "xcache": %s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout + e.status,
    merge("statuses"), merge("xcache")
  ))
end
"""
RATE = "100000000/1"


@dataclass(frozen=True)
class Server:
    """One uvicorn under test."""

    label: str
    port: int
    env: dict[str, str]


@dataclass
class Load:
    """One wrk run."""

    label: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    statuses: dict[str, int] = field(default_factory=dict)
    xcache: dict[str, int] = field(default_factory=dict)
    # CPU per request, steadier than wall time on a shared machine: the server's processes, and
    # the PostgreSQL backends of the bench database (NaN when the server is not local).
    server_cpu_ms: float = float("nan")
    postgres_cpu_ms: float = float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --- Fixtures ---------------------------------------------------------------------------------------


def make_fixtures(n_items: int) -> str:
    """A user with a token and a library of n_items media items (rows only: the list reads no files)."""
    from offload.lib.paths import resolve_library_path
    from offload.models import Library, MediaItem, MediaKind, MediaStatus

    user, token = common.user_with_token("bench-cache")
    folder = common.LIBRARY_ROOT / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    library, _ = Library.objects.update_or_create(
        name="bench-cache", owner=user, defaults={"path": str(resolve_library_path(str(folder)))}
    )
    have = MediaItem.objects.filter(library=library).count()
    MediaItem.objects.bulk_create(
        MediaItem(
            library=library,
            relative_path=f"films/film-{i:05d}.mkv",
            kind=MediaKind.MOVIE,
            status=MediaStatus.READY,
            title=f"Film {i}",
            year=1950 + i % 70,
            duration=5400.0 + i,
            width=1920,
            height=1080,
            size=2_000_000_000 + i,
            video_codec="h264",
            audio_codec="aac",
        )
        for i in range(have, n_items)
    )
    # More than asked (an earlier, larger run): drop the extra, so the list counts what it says.
    extra = (
        MediaItem.objects.filter(library=library).order_by("-pk").values_list("pk", flat=True)[: max(0, have - n_items)]
    )
    MediaItem.objects.filter(pk__in=list(extra)).delete()
    return token


# --- In-process ----------------------------------------------------------------------------------------


def limiter_costs(calls: int) -> dict[str, tuple[float, float]]:
    """p50/p99 µs of acquire(), of its Lua script called directly, and of a Redis GET; one connection."""
    from offload.lib import limits
    from offload.lib.redis_state import key, state_redis

    client = state_redis()
    script = client.register_script(limits._SLIDING_WINDOWS)
    keys = [f"bench-{uuid.uuid4().hex[:8]}-{i}" for i in range(100)]
    client.set(key("bench", "probe"), "x")
    timings: dict[str, list[float]] = {"acquire()": [], "the Lua script alone": [], "Redis GET": []}
    for i in range(200):
        # Warm: the script cached on the server, the connection open.
        limits.acquire("bench", keys[i % 100], 1_000_000_000, 60)
    for i in range(calls):
        who = keys[i % 100]
        started = time.perf_counter()
        limits.acquire("bench", who, 1_000_000_000, 60)
        timings["acquire()"].append(time.perf_counter() - started)
        started = time.perf_counter()
        script(keys=[key("ratelimit", "bench-direct", who)], args=[uuid.uuid4().hex, 1_000_000_000, 60_000])
        timings["the Lua script alone"].append(time.perf_counter() - started)
        started = time.perf_counter()
        client.get(key("bench", "probe"))
        timings["Redis GET"].append(time.perf_counter() - started)
    client.delete(
        key("bench", "probe"),
        *(key("ratelimit", "bench", who) for who in keys),
        *(key("ratelimit", "bench-direct", who) for who in keys),
    )
    return {name: (common.percentile(v, 50) * 1e6, common.percentile(v, 99) * 1e6) for name, v in timings.items()}


def request_anatomy(token: str) -> None:
    """Round trips to PostgreSQL of one cached and one uncached list GET (Django's test client)."""
    from django.db import close_old_connections
    from django.test import Client, override_settings

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    url = "/api/v1/media/"
    print("\nround trips to PostgreSQL per GET /api/v1/media/ (in-process, Django's test client):")
    for label, cache in (("cache off", False), ("cache on, hit", True)):
        with override_settings(OFFLOAD_API_CACHE=cache):
            client.get(url)  # with the cache on, the next one is a hit
            with common.trace_sql() as trace:
                # The test client skips request_started's close_old_connections(); a server runs it.
                close_old_connections()
                response = client.get(url)
        print(f"  {label}: HTTP {response.status_code}, X-Cache {response.headers.get('X-Cache', '-')}")
        print(common.format_trace(trace))


def in_process_costs(token: str, repeats: int = 300, block: int = 50) -> dict[str, tuple[float, float]]:
    """p50/p99 ms of GETs without HTTP: the list cached and not, the profiles with and without the limiter.

    Each pair alternates in blocks of `block` requests. The no-limiter client loads its middleware
    chain on its first request, made while MIDDLEWARE lacks RateLimitMiddleware, and keeps it.
    """
    from django.conf import settings
    from django.test import Client, override_settings

    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    limited = Client(**auth)
    without = [m for m in settings.MIDDLEWARE if m != "offload.web.throttle.RateLimitMiddleware"]
    with override_settings(MIDDLEWARE=without):
        unlimited = Client(**auth)
        unlimited.get("/api/v1/profiles/")
    cases = {
        "list, cache off": (limited, "/api/v1/media/", False),
        "list, cache hit": (limited, "/api/v1/media/", True),
        "profiles, limiter": (limited, "/api/v1/profiles/", True),
        "profiles, no limiter": (unlimited, "/api/v1/profiles/", True),
    }
    times: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(max(1, repeats // block)):
        for label, (client, url, cache) in cases.items():
            # One override per block: entering one sends setting_changed, which has its own cost.
            with override_settings(OFFLOAD_API_CACHE=cache):
                client.get(url)
                for _ in range(block):
                    started = time.perf_counter()
                    client.get(url)
                    times[label].append(time.perf_counter() - started)
    return {label: (common.percentile(v, 50) * 1000, common.percentile(v, 99) * 1000) for label, v in times.items()}


# --- Load ------------------------------------------------------------------------------------------------


def run_wrk(server: Server, pgid: int, path: str, token: str, connections: int, seconds: int, wrk: str) -> Load:
    """One wrk run with the JSON-printing script, and the CPU the server group and PostgreSQL used meanwhile."""
    command = [
        wrk,
        *("-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s"),
        *("-s", str(LUA_SCRIPT), f"http://127.0.0.1:{server.port}{path}", "--", token),
    ]
    cpu_before = (common.group_cpu_seconds(pgid), common.backend_cpu_seconds())
    data = common.wrk_json(command, timeout=seconds + 60)
    cpu_after = (common.group_cpu_seconds(pgid), common.backend_cpu_seconds())
    return Load(
        label=server.label,
        connections=connections,
        **common.wrk_figures(data),
        xcache=data["xcache"],
        server_cpu_ms=(cpu_after[0] - cpu_before[0]) * 1000 / max(1, data["requests"]),
        postgres_cpu_ms=(
            (cpu_after[1] - cpu_before[1]) * 1000 / max(1, data["requests"])
            if None not in (cpu_after[1], cpu_before[1])
            else float("nan")
        ),
    )


def print_load(run: int | str, what: str, load: Load) -> None:
    """One row of the per-run table."""
    codes = " ".join(f"{c}={n}" for c, n in sorted(load.statuses.items()))
    cache = " ".join(f"{c}={n}" for c, n in sorted(load.xcache.items()))
    print(
        f"{run!s:<4} {what:<20} {load.label:<12} {load.connections:>3} {load.rps:>8.1f} {load.p50_ms:>8.2f} "
        f"{load.p90_ms:>8.2f} {load.p99_ms:>8.2f} {load.server_cpu_ms:>7.2f} {load.postgres_cpu_ms:>7.2f}  "
        f"{codes}  X-Cache: {cache}" + (f"  errors={load.errors}" if load.errors else "")
    )


def check(server: Server, path: str, token: str, expected_cache: str) -> None:
    """One request before any load: the right status, and the cache behaving as configured."""
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        status, xcache = response.status, response.headers.get("X-Cache", "none")
        limited = response.headers.get("RateLimit-Limit")
    if status != 200 or xcache not in expected_cache.split("|"):
        raise SystemExit(f"{server.label}: {path} answered {status} with X-Cache {xcache}, expected {expected_cache}")
    print(f"  {server.label:<12} {path}: {status}, X-Cache {xcache}, RateLimit-Limit {limited or '(none)'}")


# --- Main ----------------------------------------------------------------------------------------------------


def _print_in_process(runs: list[dict[str, tuple[float, float]]], unit: str, fmt: str) -> None:
    """Each run's p50/p99 per case, then their medians."""
    for name in runs[0]:
        cells = "  ".join(f"{fmt.format(r[name][0])}/{fmt.format(r[name][1]).strip()}" for r in runs)
        p50, p99 = (common.median([r[name][i] for r in runs]) for i in (0, 1))
        print(
            f"  {name:<22} runs (p50/p99): {cells}   median p50 {fmt.format(p50)} {unit}, p99 {fmt.format(p99)} {unit}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every option has a default that reproduces BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per 50-connection run")
    parser.add_argument("--latency-duration", type=int, default=5, help="seconds per 1-connection run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--calls", type=int, default=10_000, help="acquire() calls in-process")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    return parser.parse_args(argv)


def medians(loads: list[Load]) -> tuple[float, float, float, float, float]:
    """Median req/s, p50 ms, p99 ms, server CPU ms per request and PostgreSQL CPU ms per request."""
    return (
        common.median([x.rps for x in loads]),
        common.median([x.p50_ms for x in loads]),
        common.median([x.p99_ms for x in loads]),
        common.median([x.server_cpu_ms for x in loads]),
        common.median([x.postgres_cpu_ms for x in loads]),
    )


def main(argv: list[str] | None = None) -> int:
    """In-process limiter and anatomy, then the wrk runs; print each, the medians and the ratios."""
    args = parse_args(argv)
    if shutil.which(args.wrk) is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    began = time.perf_counter()
    # Set before Django loads: this process's in-process requests count against the limit too.
    common.set_up("cache", OFFLOAD_RATE_API_USER=RATE)
    LUA_SCRIPT.write_text(LUA)

    token = make_fixtures(args.items)
    print(f"API cache and rate limiter ({time.strftime('%Y-%m-%d %H:%M')}):")
    common.print_summary(common.machine_summary())
    print(
        f"  servers             uvicorn, {args.workers} workers each, pool {common.WEB_POOL_SIZE}, "
        f"OFFLOAD_RATE_API_USER={RATE}; wrk 1 thread"
    )
    print(f"  data                {args.items} media items of one user; the list's first page holds 50")

    print(f"\nrate limiter in-process ({args.calls} calls each, one Redis connection), µs:")
    limiter_runs = [limiter_costs(args.calls) for _ in range(args.runs)]
    _print_in_process(limiter_runs, "µs", "{:7.1f}")
    request_anatomy(token)
    print("\nGETs in one process, Django's test client, no HTTP (300 each, alternating blocks of 50), ms:")
    request_runs = [in_process_costs(token) for _ in range(args.runs)]
    _print_in_process(request_runs, "ms", "{:6.2f}")
    off, hit = (common.median([r[k][0] for r in request_runs]) for k in ("list, cache off", "list, cache hit"))
    lim, nol = (common.median([r[k][0] for r in request_runs]) for k in ("profiles, limiter", "profiles, no limiter"))
    print(
        f"  a cache hit takes {hit / off:.0%} of a miss's p50 ({off / hit:.1f}x faster); "
        f"the limiter adds {(lim - nol) * 1000:+.0f} µs at p50"
    )

    base = common.BASE_PORT
    servers = {
        "on": Server("cache on", base, {"OFFLOAD_API_CACHE": "1"}),
        "off": Server("cache off", base + 1, {"OFFLOAD_API_CACHE": "0"}),
        "nolimit": Server(
            "no limiter", base + 2, {"OFFLOAD_API_CACHE": "1", "DJANGO_SETTINGS_MODULE": "bench.nolimit_settings"}
        ),
    }
    media, profiles = "/api/v1/media/", "/api/v1/profiles/"
    plan = [
        ("media", media, "on"),
        ("media", media, "off"),
        ("profiles", profiles, "on"),
        ("profiles", profiles, "nolimit"),
    ]
    results: dict[tuple[str, str, int], list[Load]] = {}
    with common.Children() as children:
        procs = {
            key: common.start_uvicorn(children, f"uvicorn-{key}", s.port, workers=args.workers, env=s.env)
            for key, s in servers.items()
        }
        for key, proc in procs.items():
            common.wait_for_http(f"http://127.0.0.1:{servers[key].port}/healthz/live", proc)
        print("\nfirst request to each server:")
        check(servers["on"], media, token, "miss|hit")
        check(servers["off"], media, token, "none")
        check(servers["on"], profiles, token, "miss|hit")
        check(servers["nolimit"], profiles, token, "miss|hit")
        # Warm every server and path (imports, pools, the cached entries) before measuring.
        for _what, path, key in plan:
            run_wrk(servers[key], procs[key].pid, path, token, args.connections, 2, args.wrk)

        print(f"\nload average before the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(
            "run  request              server       con    req/s   p50 ms   p90 ms   p99 ms  "
            "CPU ms/request: server  postgres  statuses"
        )
        for run in range(1, args.runs + 1):
            # Alternate the order, so a drift in the machine's load favours neither side.
            for what, path, key in plan if run % 2 else list(reversed(plan)):
                for connections, seconds in ((1, args.latency_duration), (args.connections, args.duration)):
                    load = run_wrk(servers[key], procs[key].pid, path, token, connections, seconds, args.wrk)
                    results.setdefault((what, key, connections), []).append(load)
                    print_load(run, f"GET {path}", load)
        print(f"load average after the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    c = args.connections
    print(f"\nmedian of {args.runs} runs (req/s, p50 ms, p99 ms, CPU ms per request):")
    for (what, key, connections), loads in sorted(results.items()):
        rps, p50, p99, cpu, pg = medians(loads)
        label = f"{what:<9} {servers[key].label:<11} {connections:>3} conn"
        print(f"  {label}  {rps:8.1f} req/s  p50 {p50:7.2f}  p99 {p99:7.2f}  CPU server {cpu:5.2f}  postgres {pg:5.2f}")
    on1, off1 = medians(results[("media", "on", 1)]), medians(results[("media", "off", 1)])
    onc, offc = medians(results[("media", "on", c)]), medians(results[("media", "off", c)])
    print(
        f"  cache, GET /api/v1/media/: one at a time a hit takes {on1[1] / off1[1]:.0%} of a miss's p50 "
        f"({off1[1] / on1[1]:.2f}x faster; p99 {off1[2] / on1[2]:.2f}x); with {c} connections "
        f"{onc[0] / offc[0]:.2f}x the requests/s ({onc[0]:.0f} against {offc[0]:.0f}); server CPU per request "
        f"{onc[3]:.2f} against {offc[3]:.2f} ms, PostgreSQL {onc[4]:.2f} against {offc[4]:.2f} ms"
    )
    lim1, nol1 = medians(results[("profiles", "on", 1)]), medians(results[("profiles", "nolimit", 1)])
    limc, nolc = medians(results[("profiles", "on", c)]), medians(results[("profiles", "nolimit", c)])
    print(
        f"  limiter, GET /api/v1/profiles/: {limc[0]:.0f} req/s with it, {nolc[0]:.0f} without "
        f"({limc[0] / nolc[0]:.0%}); one at a time p50 {lim1[1]:.2f} against {nol1[1]:.2f} ms "
        f"({(lim1[1] - nol1[1]) * 1000:+.0f} µs per request); server CPU per request at {c} connections "
        f"{limc[3]:.2f} against {nolc[3]:.2f} ms ({(limc[3] - nolc[3]) * 1000:+.0f} µs)"
    )
    print(f"\nfinished in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
