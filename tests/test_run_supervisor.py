"""`make run` survives a crash of one of its children: the supervisor restarts it, the rest keep running."""

import signal

import psutil
import pytest
import requests

from tests.support.cluster import wait_for
from tests.support.services import free_port
from tests.test_make_run import Run

pytestmark = pytest.mark.slow


class Supervised(Run):
    def wait_until_ready(self) -> None:
        """Every readiness check passes; the web server itself may still be coming back."""

        def every_check_passes():
            try:
                checks = requests.get(f"{self.url}/healthz/ready", timeout=5).json()["checks"]
            except requests.RequestException:
                return None
            return checks if set(checks.values()) == {"ok"} else None

        wait_for(every_check_passes, 90, "every readiness check to pass", interval=0.5)

    def child(self, name: str) -> psutil.Process:
        """The supervisor's own child of that name (the leader of the child's process group)."""
        for process in psutil.Process(self.proc.pid).children():
            command = " ".join(process.cmdline())
            lane = process.environ().get("Q_CLUSTER_NAME")
            if (
                (name == "redis" and "redis-server" in command)
                or (name == "typesense" and "typesense-server" in command)
                or (name == "web" and "uvicorn" in command)
                or (name == "workers" and "qcluster" in command and not lane)
                or (name.endswith("-lane") and "qcluster" in command and lane == name.removesuffix("-lane"))
            ):
                return process
        raise AssertionError(f"no {name} child")


def a_scan_succeeds(run: Run, api: requests.Session, library_id: int) -> None:
    def accepted():
        try:
            answer = api.post(f"{run.url}/api/v1/libraries/{library_id}/scan/", timeout=10)
        except requests.RequestException:
            return None
        return answer.json()["id"] if answer.status_code in (200, 202) else None

    job_id = wait_for(accepted, 60, "the scan to be accepted", interval=0.5)
    wait_for(
        lambda: api.get(f"{run.url}/api/v1/jobs/{job_id}/", timeout=10).json()["status"] == "succeeded",
        90,
        f"scan job {job_id} to succeed",
        interval=0.5,
    )


@pytest.mark.timeout(900)
def test_each_crashed_child_is_restarted_and_the_instance_recovers(tmp_path):
    run = Supervised(tmp_path / "var", free_port())
    try:
        run.until("ready", timeout=240)
        token = run.value("API token:").split()[0]
        run.wait_until_ready()
        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        (library,) = api.get(f"{run.url}/api/v1/libraries/", timeout=10).json()["results"]
        for name in ("redis", "typesense", "workers", "media-lane", "search-lane", "web"):
            victim = run.child(name)
            victim.send_signal(signal.SIGKILL)
            died = run.until_line(f"run: {name} (pid {victim.pid}) was killed by signal 9 unexpectedly", 30)
            assert died
            assert run.until_line(f"run: restarting {name} in", 10)
            restarted = run.until_line(f"run: {name} restarted (pid", 60)
            assert str(victim.pid) not in restarted
            assert run.child(name).pid != victim.pid
            run.wait_until_ready()
            a_scan_succeeds(run, api, library["id"])
        run.stop_with_ctrl_c(run.children())
    finally:
        run.kill()
