import socket
import threading
import uuid

import pytest
from django.core.cache import cache

from tests.support.cluster import QCluster, started_processes
from tests.support.people import api_client_for, make_user
from tests.support.servers import AsgiServer, WsgiServer
from tests.support.services import API_KEY, TypesenseServer


@pytest.fixture(scope="session")
def typesense_server(tmp_path_factory):
    """One real Typesense server for the whole session, started on first use."""
    server = TypesenseServer(tmp_path_factory.mktemp("typesense")).start()
    yield server
    server.stop()


@pytest.fixture
def index(typesense, settings):
    """A search alias (and collection) of this test's own, dropped afterwards."""
    from tests.support.search import drop_index

    settings.SEARCH_ALIAS = f"t{uuid.uuid4().hex[:12]}"
    yield settings.SEARCH_ALIAS
    settings.TYPESENSE_URL = typesense.url  # a test may have pointed it elsewhere
    drop_index(settings.SEARCH_ALIAS)


@pytest.fixture
def typesense(typesense_server, settings):
    settings.TYPESENSE_URL = typesense_server.url
    settings.TYPESENSE_API_KEY = API_KEY
    return typesense_server


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def staff(db):
    return make_user("staff", staff=True)


@pytest.fixture
def admin_client(client, staff):
    """The admin as an operator uses it: logged in as staff (not a superuser)."""
    client.force_login(staff)
    return client


@pytest.fixture
def alice_api(alice):
    return api_client_for(alice)


@pytest.fixture
def bob_api(bob):
    return api_client_for(bob)


@pytest.fixture
def staff_api(staff):
    return api_client_for(staff)


@pytest.fixture
def anon_api():
    return api_client_for(None)


@pytest.fixture
def library_root(tmp_path, settings):
    """A fresh library root for this test; also the only allowed root."""
    root = tmp_path / "library"
    root.mkdir()
    settings.OFFLOAD_LIBRARY_ROOTS = [root.resolve()]
    settings.MEDIA_ROOT = (tmp_path / "output").resolve()
    return root.resolve()


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield


@pytest.fixture
def qcluster(tmp_path, transactional_db, library_root):
    """Start real qclusters on the test database: qcluster(**env)."""
    yield from started_processes(lambda n, **env: QCluster(tmp_path / f"qcluster-{n}.log", **env))


@pytest.fixture
def asgi_server(tmp_path, transactional_db, library_root):
    """Start real uvicorn servers on the test database: asgi_server(**env)."""
    yield from started_processes(lambda n, **env: AsgiServer(tmp_path / f"uvicorn-{n}.log", **env))


@pytest.fixture
def wsgi_server(tmp_path, transactional_db, library_root):
    """Start real gunicorn servers on the test database: wsgi_server(**env)."""
    yield from started_processes(lambda n, **env: WsgiServer(tmp_path / f"gunicorn-{n}.log", **env))


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never says a word (a black-holed database)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.fixture(autouse=True)
def events_numbered_at_insert(request):
    """A test inside one never-committed transaction numbers job events at INSERT.

    In production PostgreSQL numbers them as their transaction commits (offload/jobs/events.py),
    which a `db` test never does. Tests that commit (transactional_db, real processes) keep
    the production behaviour.
    """
    names = request.fixturenames
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in names or "live_server" in names
    if marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        transactional = True
    if transactional or ("db" not in names and marker is None):
        yield
        return
    request.getfixturevalue("db")
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS offload_jobevent_number IMMEDIATE")
    yield


@pytest.fixture
def reporting_cluster():
    """A cluster's stat as django-q2's sentinel saves it (host, cluster pid, sentinel pid), on another host."""
    from types import SimpleNamespace

    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.signing import SignedPackage
    from django_q.status import Stat

    from offload.jobs import quiet

    sentinel = SimpleNamespace(
        pid=40002,
        parent_pid=40001,
        cluster_id=uuid.uuid4(),
        broker=get_broker(),
        tob=timezone.now(),
        reincarnations=0,
        status=lambda: Conf.IDLE,
        result_queue=SimpleNamespace(qsize=lambda: 0),
        task_queue=SimpleNamespace(qsize=lambda: 0),
        monitor=None,
        pusher=None,
        pool=[],
    )
    stat = Stat(sentinel)
    stat.host = "worker-host-2"
    broker = get_broker()
    broker.set_stat(stat.key, SignedPackage.dumps(stat, True), 300)
    yield stat
    broker.cache.delete(stat.key)
    quiet.set_quiet(stat.host, stat.sentinel, False)
