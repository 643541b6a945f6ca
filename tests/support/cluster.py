"""A real `manage.py qcluster` against the test database, for end-to-end tests."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

# Re-exported: many tests import the one polling helper from here.
from tests.support.waiting import wait_for as wait_for

BASE_DIR = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


class QCluster:
    def __init__(self, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "OFFLOAD_LIBRARY_ROOTS": ":".join(str(p) for p in settings.OFFLOAD_LIBRARY_ROOTS),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "Q_LOG_LEVEL": "INFO",
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [sys.executable, "manage.py", "qcluster"]

    def start(self) -> "QCluster":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=BASE_DIR,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole cluster, workers included: a host dying mid-job."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        # A graceful stop waits for running tasks (django-q2 takes seconds over it); a finished
        # test has no work left worth waiting for.
        self.kill()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def media_lane(**env: str) -> dict[str, str]:
    """The environment of a media-lane cluster (transcodes run there): qcluster(**media_lane())."""
    return {"Q_CLUSTER_NAME": settings.OFFLOAD_LANES["media"], **env}


def started_processes(make: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """A fixture's body: `start(...)` makes (make(n, ...), n counting from 0) and starts a process;
    every process started is stopped at teardown."""
    started: list[Any] = []

    def start(*args: Any, **kwargs: Any) -> Any:
        process = make(len(started), *args, **kwargs).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
