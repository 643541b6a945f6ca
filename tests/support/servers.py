"""Real web servers on the test database, for end-to-end tests: uvicorn (one port) and gunicorn (HTTP)."""

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import requests
from django.conf import settings

from tests.support.cluster import BASE_DIR, test_database_url
from tests.support.services import free_port
from tests.support.waiting import wait_for

SCRIPTS = BASE_DIR / "scripts"


def _scripts_on_path() -> None:
    # As when a script runs: Python puts its own folder on the path, and run.py imports supervisor from there.
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))


def run_script() -> ModuleType:
    """scripts/run.py as a module, loaded afresh (it reads OFFLOAD_VAR_DIR as it loads): the tests start uvicorn
    with the arguments `make run` uses."""
    _scripts_on_path()
    spec = importlib.util.spec_from_file_location("offload_run_script", SCRIPTS / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def supervisor_module() -> ModuleType:
    """scripts/supervisor.py, the same module scripts/run.py uses."""
    _scripts_on_path()
    return importlib.import_module("supervisor")


def app_env(**extra: str) -> dict[str, str]:
    """This process's environment, the app pointed at the test's database and folders, plus extra."""
    return {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "OFFLOAD_LIBRARY_ROOTS": ":".join(str(p) for p in settings.OFFLOAD_LIBRARY_ROOTS),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **extra,
    }


class Process:
    """A server process in its own session, logging to a file; killed whole at stop."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command, cwd=BASE_DIR, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def wait_http(self, url: str, timeout: float = 30.0, expect: int = 200) -> None:
        """Until url answers `expect`; RuntimeError with the log's end when the process dies or time runs out."""
        try:
            wait_for(
                lambda: requests.get(url, timeout=1).status_code == expect,
                timeout,
                f"{self.name} to answer {url}",
                ignoring=(requests.RequestException,),
                gives_up=lambda: self.proc.poll() is not None,
            )
        except AssertionError:
            raise RuntimeError(f"{self.name} did not start:\n{self.log()[-3000:]}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        # A graceful stop waits up to its timeout for open websockets; a finished test needs none.
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


class AsgiServer:
    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = app_env(**env)
        self.process: Process | None = None

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.process.proc if self.process else None

    def command(self) -> list[str]:
        # The same uvicorn arguments as make run's (scripts/run.py), on this server's port.
        return [sys.executable, "-m", "uvicorn", *run_script().web_server_args(self.env, self.port), "--no-access-log"]

    def start(self, timeout: float = 30.0) -> "AsgiServer":
        command = self.command()
        self.process = Process(command[2], command, self.log_path, self.env).start()
        self.process.wait_http(f"{self.url}/healthz/live", timeout)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()


class WsgiServer(AsgiServer):
    """gunicorn serving HTTP through Django's WSGI handler, as production does (docs/operations.md)."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
                "--worker-class", "gthread", "--workers", "2", "--threads", "4"]  # fmt: skip
