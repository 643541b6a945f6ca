import pytest

from tests.support.cluster import started_processes
from tests.support.scaleout.hosts import HostQCluster
from tests.support.scaleout.typesense_cluster import TypesenseCluster


@pytest.fixture
def host_cluster(tmp_path, transactional_db, library_root):
    """Start a real qcluster on the test database as if on another host: host_cluster("worker-b", **env)."""
    yield from started_processes(
        lambda n, hostname, **env: HostQCluster(hostname, tmp_path / f"qcluster-{hostname}.log", **env)
    )


@pytest.fixture
def typesense_cluster(tmp_path_factory):
    """Three Typesense nodes in one Raft cluster on loopback ports, a leader elected."""
    cluster = TypesenseCluster(tmp_path_factory.mktemp("typesense-cluster")).start()
    yield cluster
    cluster.stop()
