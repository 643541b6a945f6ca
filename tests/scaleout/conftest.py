import pytest

from tests.scaleout.hosts import HostQCluster
from tests.scaleout.typesense_cluster import TypesenseCluster


@pytest.fixture
def host_cluster(tmp_path, transactional_db, library_root):
    """Start a real qcluster on the test database as if on another host: host_cluster("worker-b", **env)."""
    started: list[HostQCluster] = []

    def start(hostname: str, **env: str) -> HostQCluster:
        cluster = HostQCluster(hostname, tmp_path / f"qcluster-{hostname}.log", **env).start()
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture
def typesense_cluster(tmp_path_factory):
    """Three Typesense nodes in one Raft cluster on loopback ports, a leader elected."""
    cluster = TypesenseCluster(tmp_path_factory.mktemp("typesense-cluster")).start()
    yield cluster
    cluster.stop()
