"""Search: API latency against a direct Typesense query, commit-to-searchable lag, reindex speed.

1. A full reindex of N items (default 10,000) in documents per second (the bulk import phase)
   and in total seconds (with the replay, the alias swap and the drop of the old collection).
2. `GET /api/v1/search/` latency p50/p99 for a list of one-word searches (prefixes and typos
   included), one request at a time, as alice (a library filter applies):
   - in-process (Django's test client: the whole middleware, DRF and token auth, no HTTP server),
   - over HTTP through uvicorn (1 worker), as `make run` runs it,
   each with the answer cache off (the default) and on; beside the same Typesense query sent
   directly with the Python client. The ratio API / direct is our overhead.
3. Sync lag: an item is saved (autocommit), then Typesense is polled every millisecond until
   the document shows the change; p50/p99 over the edits. The search lane (a second qcluster,
   `Q_CLUSTER_NAME=search`) runs beside a default cluster whose workers are all in long jobs,
   first on an idle CPU, then with two ffmpeg encodes burning both cores (a transcode's load).

Isolation: the PostgreSQL database `offload_bench_search` (created and migrated when missing),
Redis database 13 with prefix `offload-bench-search`, cluster names `benchsearch` and `search`,
its own Typesense server and folders under var/bench/search/, port 8110.

    .venv/bin/python bench/search.py [--items 10000] [--runs 3] [--searches 300] [--edits 200]
"""

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench" / "search"
LOGS = VAR / "logs"
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get("BENCH_SEARCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/offload_bench_search")
REDIS_URL = os.environ.get("BENCH_SEARCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PORT = int(os.environ.get("BENCH_SEARCH_PORT", "8110"))

WORDS = (
    "night day river city shadow light winter summer storm silent broken golden last first lost "
    "empire ocean mountain desert garden secret house road station island forest iron glass "
    "paper stone fire water wind moon star sun blue red black white hidden return journey"
).split()
GENRES = ["Drama", "Comedy", "Thriller", "Sci-Fi", "Action", "Documentary", "Horror", "Romance", "Jazz", "Crime"]
PEOPLE = [
    f"{first} {last}" for first in ("Ann", "Ben", "Cleo", "Dev", "Eva", "Finn") for last in ("Moreau", "Okafor", "Lind")
]


def configure() -> dict[str, str]:
    if "bench" not in urlsplit(DATABASE_URL).path:
        raise SystemExit("refusing a database whose name lacks 'bench'")
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": DATABASE_URL,
        "CONN_MAX_AGE": "600",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": "offload-bench-search",
        "OFFLOAD_Q_NAME": "benchsearch",
        "OFFLOAD_SEARCH_Q_NAME": "search",
        "OFFLOAD_SEARCH_ALIAS": "media",
        "OFFLOAD_LIBRARY_ROOTS": str(VAR / "library"),
        "MEDIA_ROOT": str(VAR / "output"),
        "SECRET_KEY": "offload-bench-key-not-a-secret",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "Q_LOG_LEVEL": "WARNING",
        # The benchmark is one user sending thousands of searches.
        "OFFLOAD_RATE_API_USER": "100000000/60",
    }
    os.environ.update(env)
    for folder in (VAR, LOGS, VAR / "library", VAR / "output"):
        folder.mkdir(parents=True, exist_ok=True)
    return env


def ensure_database() -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples_ms: list[float]) -> tuple[float, float]:
    return percentile(samples_ms, 50), percentile(samples_ms, 99)


class Children:
    """Child processes in their own process groups, all stopped on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], **env: str) -> subprocess.Popen:
        log = open(LOGS / f"{name}.log", "ab")  # closed with the process
        proc = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


# --- Data ------------------------------------------------------------------------


def seed(count: int):
    """alice's library of `count` items with varied titles, genres, people and years (fresh each run)."""
    from django.contrib.auth.models import User
    from django.db import connection

    from offload.models import Library, MediaItem
    from search.models import PendingSync

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE offload_rendition, offload_mediaitem, offload_library, search_pendingsync, "
            "search_buildreplay, search_indexbuild, django_q_ormq, offload_jobevent, offload_job CASCADE"
        )
    alice = User.objects.filter(username="alice").first() or User.objects.create_user("alice", password="x")
    library = Library.objects.create(name="Bench", path=str(VAR / "library"), owner=alice)
    rng = random.Random(7)
    items = []
    for n in range(count):
        title = " ".join(rng.choice(WORDS).capitalize() for _ in range(rng.randint(1, 4)))
        items.append(
            MediaItem(
                library=library,
                relative_path=f"{n:06}.mkv",
                kind=rng.choice(["movie", "movie", "episode", "track"]),
                title=title,
                year=rng.randint(1950, 2024),
                genres=rng.sample(GENRES, rng.randint(1, 3)),
                people=rng.sample(PEOPLE, 2),
                tags=[rng.choice(WORDS)],
                overview=" ".join(rng.choice(WORDS) for _ in range(30)),
                width=rng.choice([1920, 1280, 640]),
                height=rng.choice([1080, 720, 360]),
                duration=rng.uniform(60, 7200),
            )
        )
    MediaItem.objects.bulk_create(items, batch_size=2000)
    PendingSync.objects.all().delete()  # bulk_create sends no signals; the reindex indexes them
    return alice, library


def queries(count: int) -> list[str]:
    """One-word searches: whole words, prefixes and one-letter typos, in a fixed order."""
    rng = random.Random(11)
    out = []
    for _ in range(count):
        word = rng.choice(WORDS)
        kind = rng.random()
        if kind < 0.4:
            out.append(word)
        elif kind < 0.7:
            out.append(word[: max(3, len(word) - 2)])
        else:
            i = rng.randrange(len(word))
            out.append(word[:i] + rng.choice("aeiourst") + word[i + 1 :])
    return out


# --- 1. Reindex ------------------------------------------------------------------


def bench_reindex(runs: int) -> list[dict]:
    from search import reindex

    results = []
    for run in range(runs):
        result = reindex.rebuild()
        results.append(result)
        print(
            f"  reindex run {run + 1}: {result['documents']} documents, {result['documents_per_second']:,.0f} docs/s "
            f"in the bulk import, {result['seconds']:.2f} s in all"
        )
    return results


# --- 2. Search latency -------------------------------------------------------------


def timed(call, words: list[str]) -> list[float]:
    samples = []
    for word in words:
        started = time.perf_counter()
        call(word)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_searches(alice, words: list[str], runs: int, children: Children) -> dict[str, list[tuple[float, float]]]:
    import requests
    from django.conf import settings
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from search import typesense as ts
    from search.query import SearchRequest, build_params, visible_libraries

    token = Token.objects.get_or_create(user=alice)[0].key
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"}
    visible = visible_libraries(alice)
    client = ts.read_client()
    direct_params = {w: build_params(SearchRequest(q=w), visible) for w in words}
    in_process = Client()

    def direct(word: str) -> None:
        client.collections["media"].documents.search(direct_params[word])

    def api_in_process(word: str) -> None:
        response = in_process.get("/api/v1/search/", {"q": word}, **headers)
        assert response.status_code == 200 and not response.json()["degraded"], response.content

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"

    def api_http(word: str) -> None:
        response = session.get(f"http://127.0.0.1:{PORT}/api/v1/search/", params={"q": word}, timeout=10)
        assert response.status_code == 200 and not response.json()["degraded"], response.text

    series: dict[str, list[tuple[float, float]]] = {}

    def measure(label: str, call) -> None:
        timed(call, words[:50])  # warm connections, caches of the interpreter
        for _ in range(runs):
            series.setdefault(label, []).append(summary(timed(call, words)))
            # The direct query, measured back to back with each API series.
            series.setdefault(f"direct (beside {label})", []).append(summary(timed(direct, words)))

    for cache_seconds in (0, 60):
        settings.SEARCH_CACHE_SECONDS = cache_seconds
        cached = "cached" if cache_seconds else "uncached"
        if cache_seconds:
            timed(api_in_process, words)  # fill the cache
        measure(f"API in-process, {cached}", api_in_process)
        server = children.start(
            f"uvicorn-{cached}",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--port",
                str(PORT),
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            OFFLOAD_SEARCH_CACHE_SECONDS=str(cache_seconds),
            TYPESENSE_URL=settings.TYPESENSE_URL,
            TYPESENSE_API_KEY=settings.TYPESENSE_API_KEY,
        )
        wait_http(f"http://127.0.0.1:{PORT}/healthz/live", server)
        if cache_seconds:
            timed(api_http, words)
        measure(f"API over HTTP (uvicorn), {cached}", api_http)
        children.stop(server)
    settings.SEARCH_CACHE_SECONDS = 0
    return series


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited; see {LOGS}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s; see {LOGS}")


# --- 3. Sync lag -----------------------------------------------------------------


def burn_cpu(children: Children) -> list[subprocess.Popen]:
    """Two x264 encodes of a test pattern: what two transcodes do to the CPU."""
    from offload.lib.ffmpeg import ffmpeg_binary

    args = [
        ffmpeg_binary(),
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-c:v",
        "libx264",
        "-preset",
        "medium",
        "-f",
        "null",
        "-",
    ]
    # Endless input, as fast as the CPU allows: both cores busy until they are stopped.
    return [children.start(f"ffmpeg-{n}", args) for n in range(2)]


def bench_lag(library, edits: int, children: Children, *, loaded: bool) -> list[float]:
    from django.conf import settings

    from offload import jobs
    from offload.models import Job, JobStatus, MediaItem
    from search import typesense as ts

    env = {"TYPESENSE_URL": settings.TYPESENSE_URL, "TYPESENSE_API_KEY": settings.TYPESENSE_API_KEY}
    default = children.start("qcluster-default", [sys.executable, "manage.py", "qcluster"], **env)
    lane = children.start("qcluster-search", [sys.executable, "manage.py", "qcluster"], Q_CLUSTER_NAME="search", **env)
    sleepers = [
        jobs.enqueue("system.sleep", params={"seconds": 600, "n": n, "t": time.time()})[0]
        for n in range(settings.Q_CLUSTER["workers"])
    ]
    deadline = time.monotonic() + 60
    while Job.objects.filter(pk__in=[j.pk for j in sleepers], status=JobStatus.RUNNING).count() < len(sleepers):
        if time.monotonic() > deadline:
            raise SystemExit(f"the default cluster did not start its long jobs; see {LOGS}")
        time.sleep(0.1)
    burners = burn_cpu(children) if loaded else []
    time.sleep(2)
    documents = ts.write_client().collections["media"].documents
    ids = list(library.items.values_list("pk", flat=True)[:edits])
    # Warm-up: the lane's first task pays for imports and connections.
    for pk in ids[:5]:
        _edit_and_wait(MediaItem, documents, pk, "warm")
    samples = []
    for n, pk in enumerate(ids):
        samples.append(_edit_and_wait(MediaItem, documents, pk, f"lag {n} {time.time()}"))
        time.sleep(0.02)
    busy = Job.objects.filter(pk__in=[j.pk for j in sleepers], status=JobStatus.RUNNING).count()
    print(f"  ({busy} of {len(sleepers)} default workers still in their long jobs at the end)")
    for proc in burners:
        children.stop(proc)
    for proc in (lane, default):
        children.stop(proc)
    Job.objects.filter(pk__in=[j.pk for j in sleepers]).update(status=JobStatus.CANCELLED)
    return samples


def _edit_and_wait(model, documents, pk: int, title: str) -> float:
    item = model.objects.get(pk=pk)
    item.title = title
    item.save(update_fields=["title", "updated_at"])  # autocommit: committed when save returns
    committed = time.perf_counter()
    deadline = committed + 30
    while time.perf_counter() < deadline:
        if documents[str(pk)].retrieve().get("title") == title:
            return (time.perf_counter() - committed) * 1000
        time.sleep(0.001)
    raise SystemExit(f"item {pk} was not searchable within 30 s; see {LOGS}")


# --- Main ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--edits", type=int, default=200)
    args = parser.parse_args()

    configure()
    ensure_database()
    from django.conf import settings

    from tests.support.services import API_KEY, TypesenseServer

    data_dir = VAR / "typesense"
    shutil.rmtree(data_dir, ignore_errors=True)
    server = TypesenseServer(data_dir).start()
    settings.TYPESENSE_URL, settings.TYPESENSE_API_KEY = server.url, API_KEY
    children = Children()
    try:
        print(f"seeding {args.items} items …")
        alice, library = seed(args.items)

        print("1. full reindex")
        reindexes = bench_reindex(args.runs)

        print("2. search latency (ms)")
        words = queries(args.searches)
        series = bench_searches(alice, words, args.runs, children)
        for label, values in series.items():
            p50 = statistics.median(v[0] for v in values)
            p99 = statistics.median(v[1] for v in values)
            print(
                f"  {label:<48} p50 {p50:6.2f}  p99 {p99:6.2f}   runs: "
                + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in values)
            )

        print("3. sync lag, commit → searchable (ms)")
        for loaded in (False, True):
            runs = [summary(bench_lag(library, args.edits, children, loaded=loaded)) for _ in range(args.runs)]
            p50 = statistics.median(r[0] for r in runs)
            p99 = statistics.median(r[1] for r in runs)
            label = "two ffmpeg encodes on the CPU" if loaded else "idle CPU"
            print(
                f"  {label:<32} p50 {p50:6.1f}  p99 {p99:6.1f}   runs: "
                + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in runs)
            )

        rates = [r["documents_per_second"] for r in reindexes]
        totals = [r["seconds"] for r in reindexes]
        print(
            f"reindex of {args.items}: median {statistics.median(rates):,.0f} docs/s bulk, "
            f"{statistics.median(totals):.2f} s in all (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )
    finally:
        children.stop_all()
        server.stop()


if __name__ == "__main__":
    main()
