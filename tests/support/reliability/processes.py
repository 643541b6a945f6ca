"""The app's processes as the reliability tests run them: qcluster, uvicorn, manage.py commands."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import requests

from tests.support.cluster import BASE_DIR
from tests.support.services import free_port
from tests.support.waiting import wait_for

# Variables from the developer's shell or from `make test` that would point the app elsewhere.
_FOREIGN_PREFIXES = (
    "DATABASE_", "REDIS_", "TYPESENSE_", "OFFLOAD_", "Q_", "TMDB_", "PROMETHEUS_", "METRICS_", "CONN_MAX_AGE",
    "MEDIA_ROOT", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "LOG_LEVEL", "DJANGO_SETTINGS_MODULE", "TEST_DATABASE",
)  # fmt: skip


def app_env(**values: str) -> dict[str, str]:
    """This process's environment without anything that configures the app, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
    env.update(
        SECRET_KEY="offload-reliability-tests-not-a-secret",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        Q_LOG_LEVEL="WARNING",
        # The stack's users create their own libraries.
        OFFLOAD_USERS_CREATE_LIBRARIES="1",
    )
    env.update(values)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run a manage.py command with this environment; answer its stdout."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, logs: Callable[[], str] | None = None) -> Any:
    """wait_for, where a database that is away for a moment counts as 'not yet'."""
    return wait_for(predicate, timeout, what, interval=0.2, ignoring=(psycopg.OperationalError,), logs=logs)


class AppProcess:
    """A qcluster or web server of the app, in a process group of its own, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "AppProcess":
        """Start the process; its output goes to the log file."""
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- start {time.strftime('%H:%M:%S')}\n".encode())
            self.proc = subprocess.Popen(
                self.args, cwd=BASE_DIR, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (workers and their ffmpeg included): a host dying."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the leader, as a deploy would; SIGKILL the group if it lingers."""
        if not self.alive:
            self.kill()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def tail(self, chars: int = 4000) -> str:
        """The end of the process's log, headed with its name."""
        try:
            return f"--- {self.name} log ---\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class WebServer(AppProcess):
    """uvicorn serving config.asgi (HTTP and websockets), as in production, on a fixed port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws/events/"
        args = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                "--port", str(self.port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
        super().__init__("uvicorn", args, env, log_path)

    def start(self, timeout: float = 60.0) -> "WebServer":
        """Start uvicorn and wait until it serves /healthz/live."""
        super().start()
        wait_until(self._live, timeout, "uvicorn to answer /healthz/live", self.tail)
        return self

    def restart(self, *, crash: bool) -> None:
        """Stop (SIGTERM, as a deploy does; SIGKILL when `crash`) and start again on the same port."""
        self.kill() if crash else self.stop()
        self.start()

    def _live(self) -> bool:
        if not self.alive:
            raise AssertionError(f"uvicorn exited\n{self.tail()}")
        try:
            return requests.get(f"{self.url}/healthz/live", timeout=1).status_code == 200
        except requests.RequestException:
            return False
