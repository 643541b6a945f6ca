"""`make run`'s script end to end: no services given, so it brings its own, and Ctrl-C stops all of it."""

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import psutil
import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.support.cluster import BASE_DIR, wait_for
from tests.support.services import API_KEY, free_port

pytestmark = pytest.mark.slow

# What a fresh machine does not have: run.py must start or default every one of them.
GIVEN_BY_THE_TEST_RUN = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CACHE_URL",
    "REDIS_KEY_PREFIX",
    "TYPESENSE_URL",
    "TYPESENSE_API_KEY",
    "OFFLOAD_LIBRARY_ROOTS",
    "MEDIA_ROOT",
    "PROMETHEUS_MULTIPROC_DIR",
    "TEST_DATABASE_NAME",
    "SECRET_KEY",
    "DEBUG",
    "DJANGO_SETTINGS_MODULE",
)


class Run:
    """scripts/run.py as a user starts it, its output read line by line."""

    def __init__(self, var_dir, port: int, **given: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in GIVEN_BY_THE_TEST_RUN}
        env.update(OFFLOAD_VAR_DIR=str(var_dir), PORT=str(port), **given)
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, wanted: str, timeout: float) -> None:
        """Until the script prints exactly this line."""
        self.until_line(wanted, timeout, whole=True)

    def until_line(self, start: str, timeout: float, *, whole: bool = False) -> str:
        """The next printed line that starts with `start` (or is `start`, with whole)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if line.strip() == start or (not whole and line.strip().startswith(start)):
                return line
        raise AssertionError(f"no {start!r} within {timeout} s; the output:\n" + "\n".join(self.lines[-60:]))

    def value(self, label: str) -> str:
        return next(line.split(label, 1)[1].strip() for line in self.lines if line.strip().startswith(label))

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop_with_ctrl_c(self, children: list[psutil.Process]) -> None:
        """Ctrl-C in the terminal: the script stops what it started, and exits."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(90) == 0
        self.until("Everything stopped.", timeout=5)
        still_running = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert still_running == []

    def wait_until_ready(self) -> None:
        def every_check_passes():
            checks = requests.get(f"{self.url}/healthz/ready", timeout=5).json()["checks"]
            return checks if set(checks.values()) == {"ok"} else None

        wait_for(every_check_passes, 60, "every readiness check to pass", interval=0.5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()


def beside_the_run(var_dir, *args: str) -> subprocess.CompletedProcess:
    """manage.py in a second terminal: none of the run's environment, only where its var/ folder is."""
    env = {k: v for k, v in os.environ.items() if k not in GIVEN_BY_THE_TEST_RUN}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**env, "OFFLOAD_VAR_DIR": str(var_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_run_starts_everything_with_its_own_services_and_ctrl_c_stops_it_all(tmp_path):
    var_dir = tmp_path / "var"
    run = Run(var_dir, free_port())
    try:
        run.until("ready", timeout=240)
        for line in ("Database:   embedded: SQLite", "Redis:      embedded:", "Typesense:  embedded:"):
            assert any(line in printed for printed in run.lines), line
        assert run.value("Admin:") == f"{run.url}/admin/"
        username, password = run.value("Login:").split(" / ")
        token = run.value("API token:").split()[0]
        children = run.children()
        assert len(children) >= 5  # Redis, Typesense, the web server and the clusters
        # A cluster per lane: the default lane, the media lane (transcodes), the search lane and
        # the notify lane (notifications to people's endpoints).
        clusters = [child for child in children if "qcluster" in " ".join(child.cmdline())]
        lanes = {child.environ().get("Q_CLUSTER_NAME", "default") for child in clusters}
        assert lanes == {"default", *list(settings.OFFLOAD_LANES.values())[1:]}, lanes
        # Self-hosted ntfy or Gotify on the LAN works out of the box, and the run says so.
        assert any("OFFLOAD_NOTIFY_ALLOW_PRIVATE is on" in printed for printed in run.lines)
        assert {child.environ().get("OFFLOAD_NOTIFY_ALLOW_PRIVATE") for child in clusters} == {"1"}
        run.wait_until_ready()
        # Readiness names every declared lane, each with its cluster.
        checks = requests.get(f"{run.url}/healthz/ready", timeout=5).json()["checks"]
        lane_checks = {name for name in checks if name.startswith("lane:")}
        assert lane_checks == {f"lane:{lane}" for lane in settings.OFFLOAD_LANES}
        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        # The demo library's scan runs on the workers, and its items reach the search index.
        (library,) = api.get(f"{run.url}/api/v1/libraries/", timeout=10).json()["results"]
        wait_for(
            lambda: library["id"] in [
                job["target"]["id"] for job in api.get(f"{run.url}/api/v1/jobs/?kind=library.scan&status=succeeded",
                                                        timeout=10).json()["results"]
            ],
            120,
            "the demo scan",
            interval=0.5,
        )  # fmt: skip

        def found_in_the_index():
            answer = api.get(f"{run.url}/api/v1/search/?q=colour", timeout=10).json()
            return answer["found"] and not answer["degraded"]

        wait_for(found_in_the_index, 120, "the demo items in the search index", interval=0.5)
        # The printed login opens the admin.
        browser = requests.Session()
        login_page = browser.get(f"{run.url}/admin/login/", timeout=10)
        signed_in = browser.post(
            f"{run.url}/admin/login/?next=/admin/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": login_page.cookies["csrftoken"]},
            headers={"Referer": f"{run.url}/admin/login/"},
            timeout=10,
        )
        assert signed_in.url == f"{run.url}/admin/", signed_in.url

        # Its secrets are this user's alone: var/ and the database (API tokens, sessions) closed
        # to others, and no secret on a command line (which every user can read).
        assert mode(var_dir) == 0o700
        assert mode(var_dir / "offload.sqlite3") == 0o600
        for name in ("run.env", "dev-secret-key", "typesense-api-key", "redis-password"):
            assert mode(var_dir / name) == 0o600, name
        secrets_kept = [(var_dir / n).read_text().strip() for n in ("typesense-api-key", "redis-password")]
        assert all(len(secret) >= 32 for secret in secrets_kept)
        for child in run.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                assert not [s for s in secrets_kept if s in " ".join(child.cmdline())], child.cmdline()
        # The embedded Typesense takes its own random key alone and no browser's cross-origin call.
        typesense_url = run.value("Typesense:").split()[1]
        assert requests.get(f"{typesense_url}/collections", headers={"X-TYPESENSE-API-KEY": "offload-dev-key"},
                            timeout=5).status_code == 401  # fmt: skip
        preflight = requests.options(
            f"{typesense_url}/collections",
            headers={"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "GET"},
            timeout=5,
        )
        assert "Access-Control-Allow-Origin" not in preflight.headers
        # The embedded Redis asks for its password.
        redis_port = int(run.value("Redis:").split()[1].rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(64).startswith(b"-NOAUTH")

        # The README's commands work from a second terminal: they read var/run.env.
        listed = beside_the_run(var_dir, "jobs", "list")
        assert listed.returncode == 0, listed.stderr
        assert "library.scan" in listed.stdout

        run.stop_with_ctrl_c(children)
        # The run's addresses went with it.
        assert not (var_dir / "run.env").exists()
    finally:
        run.kill()


@pytest.fixture
def spare_database():
    """An empty PostgreSQL database beside the test database, dropped afterwards."""
    db = connection.settings_dict
    server = f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    name = f"offload_run_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def commands_of(processes: list[psutil.Process]) -> list[str]:
    """The command lines of those still running: the demo's scan runs short-lived ffprobes meanwhile."""
    commands = []
    for process in processes:
        try:
            commands.append(" ".join(process.cmdline()))
        except psutil.NoSuchProcess:
            continue
    return commands


def test_run_uses_the_services_it_is_given_and_starts_none_of_its_own(tmp_path, typesense_server, spare_database):
    given = {
        "DATABASE_URL": spare_database,
        "REDIS_URL": os.environ["REDIS_URL"],
        "REDIS_KEY_PREFIX": f"run-{uuid.uuid4().hex[:8]}",
        "TYPESENSE_URL": typesense_server.url,
        "TYPESENSE_API_KEY": API_KEY,
        "OFFLOAD_SEARCH_ALIAS": f"run{uuid.uuid4().hex[:8]}",
    }
    run = Run(tmp_path / "var", free_port(), **given)
    try:
        run.until("ready", timeout=240)
        assert run.value("Database:") == f"given: {spare_database}"
        assert run.value("Redis:") == f"given: {given['REDIS_URL']}"
        assert run.value("Typesense:") == f"given: {typesense_server.url}"
        children = run.children()
        commands = commands_of(children)
        assert not [c for c in commands if "redis-server" in c or "typesense-server" in c], commands
        run.wait_until_ready()
        run.stop_with_ctrl_c(children)
    finally:
        run.kill()
