"""A Typesense cluster of several nodes on loopback ports: Raft peering, a leader, and nodes to kill."""

import os
import signal
import subprocess
from pathlib import Path

import requests

from tests.support.services import API_KEY, free_port, launch_typesense
from tests.support.waiting import wait_for

# /debug's "state": the node's Raft role.
LEADER = 1


class TypesenseNode:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.peering_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """This node's entry in the nodes file: peering address, peering port, API port."""
        return f"127.0.0.1:{self.peering_port}:{self.api_port}"

    def start(self, nodes_file: Path) -> None:
        self.proc, self._log = launch_typesense(
            self.data_dir,
            self.api_port,
            "--peering-address=127.0.0.1",
            f"--peering-port={self.peering_port}",
            f"--nodes={nodes_file}",
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            return bool(requests.get(f"{self.url}/health", timeout=1).json().get("ok"))
        except (requests.RequestException, ValueError):
            return False

    def is_leader(self) -> bool:
        try:
            answer = requests.get(f"{self.url}/debug", headers={"X-TYPESENSE-API-KEY": API_KEY}, timeout=1)
            return answer.json().get("state") == LEADER
        except (requests.RequestException, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL: a machine lost, not a clean shutdown."""
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None:
            self._log.close()


class TypesenseCluster:
    """Typesense nodes that know each other through one nodes file, as on separate machines."""

    def __init__(self, base_dir: Path, size: int = 3) -> None:
        self.base_dir = base_dir
        self.nodes = [TypesenseNode(base_dir / f"node-{n}") for n in range(size)]
        self.nodes_file = base_dir / "nodes"

    @property
    def url(self) -> str:
        """Every node, as TYPESENSE_URL takes them."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 90.0) -> "TypesenseCluster":
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.nodes_file.write_text(",".join(node.address for node in self.nodes))
        for node in self.nodes:
            node.start(self.nodes_file)
        self.wait_for_leader(timeout)
        return self

    def live_nodes(self) -> list[TypesenseNode]:
        return [node for node in self.nodes if node.alive]

    def leader(self) -> TypesenseNode | None:
        leaders = [node for node in self.live_nodes() if node.is_leader()]
        return leaders[0] if len(leaders) == 1 else None

    def wait_for_leader(self, timeout: float = 60.0) -> TypesenseNode:
        """Wait until the live nodes are healthy and exactly one of them leads."""
        try:
            return wait_for(
                lambda: all(node.healthy() for node in self.live_nodes()) and self.leader(),
                timeout,
                "a Typesense leader",
                interval=0.25,
            )
        except AssertionError:
            pass
        logs = "\n".join((node.data_dir / "server.log").read_text(errors="replace")[-1500:] for node in self.nodes)
        raise RuntimeError(f"no Typesense leader within {timeout} s:\n{logs}")

    def stop(self) -> None:
        # The data is thrown away: no need to wait for each node's graceful shutdown.
        for node in self.nodes:
            node.kill()
            node.stop()
