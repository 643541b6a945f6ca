"""What both benchmarks share: an isolated environment, the bench database, child processes, statistics."""

import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
LOG_DIR = VAR / "logs"
LIBRARY_ROOT = VAR / "library"
PYTHON = sys.executable


def _bench_setting(name: str, default: str) -> str:
    """A BENCH_-prefixed override, so a developer's own DATABASE_URL etc. never leak in."""
    return os.environ.get(f"BENCH_{name}", "").strip() or default


DATABASE_URL = _bench_setting("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/offload_bench")
REDIS_URL = _bench_setting("REDIS_URL", "redis://127.0.0.1:6379/12")
REDIS_KEY_PREFIX = _bench_setting("REDIS_KEY_PREFIX", "offload-bench")
Q_NAME = _bench_setting("Q_NAME", "bench")
Q_WORKERS = _bench_setting("Q_WORKERS", "2")
Q_POLL = _bench_setting("Q_POLL", "0.05")
CONN_MAX_AGE = _bench_setting("CONN_MAX_AGE", "600")
BASE_PORT = int(_bench_setting("PORT", "8100"))


def configure_environment() -> dict[str, str]:
    """Point this process and every child at the bench database, Redis db, cluster name and folders."""
    db_name = urlsplit(DATABASE_URL).path.lstrip("/")
    # The benchmarks truncate the job and queue tables: refuse any database not meant for that.
    if "bench" not in db_name:
        raise SystemExit(f"refusing to benchmark against database {db_name!r}: its name must contain 'bench'")
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": DATABASE_URL,
        "CONN_MAX_AGE": CONN_MAX_AGE,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": REDIS_KEY_PREFIX,
        "OFFLOAD_Q_NAME": Q_NAME,
        "OFFLOAD_Q_WORKERS": Q_WORKERS,
        "OFFLOAD_Q_POLL": Q_POLL,
        "OFFLOAD_LIBRARY_ROOTS": str(LIBRARY_ROOT),
        "MEDIA_ROOT": str(VAR / "output"),
        # Production-like: DEBUG off (no query log, no browsable API); a fixed key silences the dev-key warning.
        "SECRET_KEY": "offload-bench-key-not-a-secret",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "Q_LOG_LEVEL": "WARNING",
        "TYPESENSE_URL": "",
    }
    os.environ.update(env)
    for folder in (VAR, LOG_DIR, LIBRARY_ROOT, VAR / "output"):
        folder.mkdir(parents=True, exist_ok=True)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return env


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit, so the `finally` blocks stop every child."""

    def _exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)


def ensure_database() -> None:
    """Create the bench database when missing, set Django up and migrate it."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(DATABASE_URL)
    db_name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
            print(f"created database {db_name}")

    import django
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    django.setup()
    loader = MigrationLoader(connection)
    unknown = set(loader.applied_migrations) - set(loader.disk_migrations)
    if unknown:
        # Migrated by another checkout: its columns would break this code's inserts. Start afresh.
        print(f"database {db_name} has migrations this checkout lacks ({sorted(unknown)[:3]} …): recreating it")
        connection.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db_name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    call_command("migrate", interactive=False, verbosity=0)


def truncate_queue_tables() -> None:
    """Empty the job, event and django-q2 queue tables of the bench database (schedules stay).

    CASCADE: what hangs off a job (its members, its log) goes with it, including tables added
    after this was written.
    """
    from django.db import OperationalError, connection

    for attempt in range(10):
        try:
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE offload_jobevent, offload_job, django_q_ormq, django_q_task CASCADE")
            return
        except OperationalError:
            # Requests a load run left in flight still write to these tables: a TRUNCATE
            # taking its locks across them can deadlock with one. They finish within moments.
            if attempt == 9:
                raise
            time.sleep(0.5)


def print_profile(title: str, work: Callable[[], Any], lines: int = 40) -> None:
    """Run work under cProfile and print its heaviest calls by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    print(f"\n{title} under cProfile, by cumulative time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(lines)
    print(f"\n{title} under cProfile, by own time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(lines)


class Children:
    """Child processes, each in its own process group, all stopped on exit, error or Ctrl-C."""

    def __init__(self) -> None:
        self._procs: list[tuple[subprocess.Popen, IO[bytes]]] = []

    def __enter__(self) -> "Children":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start args in a new session (so a process group of its own), logging to var/bench/logs."""
        # Closed in stop().
        log = open(LOG_DIR / f"{name}.log", "ab")
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._procs.append((proc, log))
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 10.0) -> None:
        """SIGTERM the leader, wait for its whole process group to go, then SIGKILL whatever is left."""
        deadline = time.monotonic() + grace
        # The leader only: qcluster and uvicorn stop their own children, and a django-q2 child
        # signalled directly leaves the cluster waiting for it.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        # The leader may exit before its children: wait for the whole group, not the leader alone.
        while time.monotonic() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
            time.sleep(0.05)
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        for entry in list(self._procs):
            if entry[0] is proc:
                entry[1].close()
                self._procs.remove(entry)

    def stop_all(self) -> None:
        """Stop every child still running, newest first."""
        for proc, _log in reversed(list(self._procs)):
            self.stop(proc, grace=5.0)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until url answers 200; fail early when the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}; see {LOG_DIR}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s; see {LOG_DIR}")


class ConnectionSampler:
    """Samples how many PostgreSQL backends serve the bench database, from a thread of its own."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "ConnectionSampler":
        import psycopg

        parts = urlsplit(DATABASE_URL)
        # Its own connection to the maintenance database, so it is not counted itself.
        self._conn = psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)
        self._db_name = parts.path.lstrip("/")
        self._thread = threading.Thread(target=self._run, name="bench-connection-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
        while not self._stop.is_set():
            self.peak = max(self.peak, self._conn.execute(query, [self._db_name]).fetchone()[0])
            self._stop.wait(self.interval)


def _proc_stat(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name (state first), or None when unreadable."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds used so far by the live processes of a process group (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(entry.name)
        if fields is not None and int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def backend_cpu_seconds() -> float | None:
    """CPU seconds used so far by the other PostgreSQL backends of this database; None if not local."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    ticks = os.sysconf("SC_CLK_TCK")
    stats = [_proc_stat(pid) for pid in pids]
    readable = [fields for fields in stats if fields is not None]
    if pids and not readable:
        return None
    return sum(int(f[11]) + int(f[12]) for f in readable) / ticks


def run_checked(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a short command without a shell and fail loudly on a non-zero exit."""
    return subprocess.run(args, cwd=ROOT, capture_output=True, timeout=timeout, check=True)


@dataclass
class Pass:
    """N tasks through a freshly started cluster: what every throughput phase reports."""

    jobs: int
    enqueue_rate: float
    wall_seconds: float  # cluster start → all done
    steady_jobs: int  # done in the steady window: from 10 % done (start-up over) to all done
    steady_seconds: float
    # CPU per job in the steady window: of the qcluster's processes, and of its PostgreSQL
    # backends (NaN when the server is not local).
    cluster_cpu_ms: float
    postgres_cpu_ms: float

    @property
    def wall_rate(self) -> float:
        return self.jobs / self.wall_seconds

    @property
    def steady_rate(self) -> float:
        return self.steady_jobs / self.steady_seconds if self.steady_seconds > 0 else float("nan")


@dataclass
class Timing:
    """The measured part of a Pass, and how many times the remaining count was read."""

    wall_seconds: float
    steady_jobs: int
    steady_seconds: float
    cluster_cpu_ms: float
    postgres_cpu_ms: float
    polls: int

    def figures(self) -> dict[str, float]:
        """The fields a Pass takes."""
        return {name: value for name, value in self.__dict__.items() if name != "polls"}


def time_until_done(
    cluster: subprocess.Popen,
    jobs: int,
    remaining: Callable[[], int],
    *,
    timeout: float,
    poll: float,
    what: str,
    started: float | None = None,
) -> Timing:
    """Poll remaining() until it reaches 0, timing from `started` (perf_counter; default now).

    CPU is read before the caller stops the cluster: a stopped process and a closed backend take
    their counters along.
    """
    started = time.perf_counter() if started is None else started
    mark, left_at_mark, mark_cpu, polls = None, jobs, (0.0, 0.0), 0
    while True:
        left = remaining()
        polls += 1
        now = time.perf_counter()
        if mark is None and left <= jobs * 0.9:
            mark, left_at_mark = now, left
            mark_cpu = (group_cpu_seconds(cluster.pid), backend_cpu_seconds() or 0.0)
        if left == 0:
            break
        if cluster.poll() is not None:
            raise RuntimeError(f"qcluster exited with {cluster.returncode}; see {LOG_DIR}")
        if now - started > timeout:
            raise RuntimeError(f"{what}: {left} of {jobs} left after {timeout:g} s; see {LOG_DIR}")
        time.sleep(poll)
    finished = time.perf_counter()
    cluster_cpu, postgres_cpu = group_cpu_seconds(cluster.pid), backend_cpu_seconds()
    steady_jobs = max(left_at_mark, 1)
    return Timing(
        wall_seconds=finished - started,
        steady_jobs=steady_jobs,
        steady_seconds=finished - (mark or finished),
        cluster_cpu_ms=(cluster_cpu - mark_cpu[0]) * 1000 / steady_jobs,
        postgres_cpu_ms=(postgres_cpu - mark_cpu[1]) * 1000 / steady_jobs if postgres_cpu is not None else float("nan"),
        polls=polls,
    )


def pass_medians(runs: list[Pass]) -> dict[str, float]:
    """Median rates and CPU over several runs of one phase."""
    return {
        "wall": median([r.wall_rate for r in runs]),
        "steady": median([r.steady_rate for r in runs]),
        "enqueue": median([r.enqueue_rate for r in runs]),
        "cluster_cpu": median([r.cluster_cpu_ms for r in runs]),
        "postgres_cpu": median([r.postgres_cpu_ms for r in runs]),
    }


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def machine_summary() -> dict[str, str]:
    """Versions and the settings that matter, as this process sees them."""
    import django
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    q = settings.Q_CLUSTER
    return {
        "code": code_version(),
        "nproc": str(os.cpu_count()),
        "python": sys.version.split()[0],
        "django": django.get_version(),
        "django-q2": _dist_version("django-q2"),
        "postgresql": pg_version,
        "CONN_MAX_AGE": str(settings.DATABASES["default"]["CONN_MAX_AGE"]),
        "CONN_HEALTH_CHECKS": str(settings.DATABASES["default"].get("CONN_HEALTH_CHECKS")),
        "DEBUG": str(settings.DEBUG),
        "Q_CLUSTER": (
            f"name={q['name']} workers={q['workers']} save_limit={q['save_limit']} "
            f"poll={q['poll']} bulk={q['bulk']} orm={q['orm']}"
        ),
    }


def code_version() -> str:
    """The checkout's commit (with -dirty for local changes), or BENCH_CODE_VERSION outside git."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is not None and done.returncode == 0:
        return done.stdout.strip()
    return os.environ.get("BENCH_CODE_VERSION", "unknown (not a git checkout)")


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def print_summary(summary: dict[str, str]) -> None:
    """Print the machine and settings block every report starts with."""
    for key, value in summary.items():
        print(f"  {key:<19} {value}")


# --- SQL anatomy ---------------------------------------------------------------

_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def describe_sql(sql: str) -> str:
    """'UPDATE offload_job' from a full statement: the verb and the first table."""
    verb = sql.split(None, 1)[0].upper()
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
        return {"RELEASE": "RELEASE SAVEPOINT", "ROLLBACK": "ROLLBACK TO SAVEPOINT"}.get(verb, verb)
    match = _TABLE.search(sql)
    return f"{verb} {match.group(1) if match else '?'}"


@dataclass
class SqlTrace:
    """Every round trip one block of code made: statements, health checks, BEGIN and COMMIT."""

    events: list[str] = field(default_factory=list)

    @property
    def statements(self) -> int:
        return sum(1 for e in self.events if e not in ("BEGIN", "COMMIT", "health check SELECT 1"))

    @property
    def transactions(self) -> int:
        return self.events.count("COMMIT")

    @property
    def health_checks(self) -> int:
        return self.events.count("health check SELECT 1")

    @property
    def round_trips(self) -> int:
        return len(self.events)


@contextlib.contextmanager
def trace_sql() -> Iterator[SqlTrace]:
    """Record the default connection's round trips, including the ones execute_wrapper cannot see."""
    from django.db import connection

    trace = SqlTrace()
    in_transaction = False

    def wrapper(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        nonlocal in_transaction
        # psycopg sends BEGIN before the first statement of an atomic block, as its own round trip.
        if connection.in_atomic_block and not in_transaction:
            trace.events.append("BEGIN")
            in_transaction = True
        trace.events.append(describe_sql(sql))
        return execute(sql, params, many, context)

    real_is_usable, real_commit = connection.is_usable, connection.commit

    def is_usable() -> bool:
        # CONN_HEALTH_CHECKS: the first query after close_old_connections() pings with SELECT 1.
        trace.events.append("health check SELECT 1")
        return real_is_usable()

    def commit() -> None:
        nonlocal in_transaction
        if in_transaction:
            trace.events.append("COMMIT")
        in_transaction = False
        real_commit()

    connection.is_usable, connection.commit = is_usable, commit
    try:
        with connection.execute_wrapper(wrapper):
            yield trace
    finally:
        del connection.is_usable
        del connection.commit


def format_trace(trace: SqlTrace, indent: str = "    ") -> str:
    """One line per round trip, with a count line."""
    lines = [f"{indent}{event}" for event in trace.events] or [f"{indent}(none)"]
    lines.append(
        f"{indent}= {trace.statements} statements, {trace.transactions} transactions, "
        f"{trace.health_checks} health checks: {trace.round_trips} round trips"
    )
    return "\n".join(lines)


# --- Servers, users and metrics for the transcode, notification and cache benchmarks ---------------

# Django's psycopg pool for web servers only: the qcluster forks, and pooled connections do not
# survive a fork (scripts/run.py web_database_env does the same).
WEB_POOL_SIZE = _bench_setting("POOL_MAX", "4")


def prepare_run(name: str) -> Path:
    """Call after configure_environment, before Django loads: own metrics folder, no inherited pool size.

    The run's processes get an empty prometheus multiprocess folder of their own, so they never
    write into the app's. DATABASE_POOL_SIZE from the shell is dropped: only web servers get it
    (web_env), never the qcluster or this process.
    """
    os.environ.pop("DATABASE_POOL_SIZE", None)
    folder = VAR / "prometheus" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # config.settings reads this and exports it to every child.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def wrk_json(command: list[str], timeout: float) -> dict[str, Any]:
    """Run wrk with a Lua script that prints one `BENCH_JSON {...}` line; answer that JSON."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True, start_new_session=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    return json.loads(line.removeprefix("BENCH_JSON "))


def wrk_figures(data: dict[str, Any]) -> dict[str, Any]:
    """The load figures every wrk-driven result carries, in seconds and milliseconds."""
    return {
        "requests": data["requests"],
        "seconds": data["duration_us"] / 1e6,
        "p50_ms": data["p50_us"] / 1000,
        "p90_ms": data["p90_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "statuses": data["statuses"],
        "errors": data["errors"],
    }


@contextlib.asynccontextmanager
async def authenticated_websocket(ws_url: str, origin: str, token: str) -> Any:
    """A websocket to /ws/events/ that has sent its token and received "hello"; no client pings."""
    from websockets.asyncio.client import connect

    async with connect(ws_url, origin=origin, open_timeout=10, ping_interval=None, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if hello.get("type") != "hello":
            raise RuntimeError(f"websocket answered {hello} instead of hello")
        yield ws


def set_up(name: str, **environ: str) -> None:
    """A benchmark's start: its environment and own metrics folder, `environ` on top (before Django
    loads), signal handling, and the migrated bench database."""
    configure_environment()
    prepare_run(name)
    os.environ.update(environ)
    install_signal_handlers()
    ensure_database()


def web_env(**extra: str) -> dict[str, str]:
    """A web server's own environment: the app's settings with a small pool, never given to qcluster."""
    return {"DATABASE_POOL_SIZE": WEB_POOL_SIZE, **extra}


def start_uvicorn(
    children: Children,
    name: str,
    port: int,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    app: str = "config.asgi:application",
) -> subprocess.Popen:
    """uvicorn on 127.0.0.1:port with no access log; workers=1 serves from the started process itself."""
    args = [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    args += ["--no-access-log", "--lifespan", "off", "--log-level", "warning"]
    return children.start(name, args, env=web_env(**(env or {})))


def start_qcluster(children: Children, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """One `manage.py qcluster` on the bench cluster name, with persistent connections and no pool."""
    return children.start(name, [PYTHON, "manage.py", "qcluster"], env=env)


def user_with_token(username: str, *, staff: bool = False) -> tuple[Any, str]:
    """A bench user (staff or not) and its DRF token key, created when missing."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.update_or_create(username=username, defaults={"is_staff": staff})
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key
