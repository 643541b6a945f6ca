"""Fixtures of the reliability suite: private PostgreSQL, Redis and Typesense, and a fresh stack per test.

These tests restart servers, so they never use the machine's shared ones, nor pytest-django's
test database: the session starts its own servers and migrates a template database once; each
test copies it (CREATE DATABASE … TEMPLATE takes a fraction of a second) and starts the app's
processes on the copy.
"""

import pytest

from tests.support.reliability.services import PrivatePostgres, PrivateRedis
from tests.support.reliability.stack import Services, new_stack, prepare_services
from tests.support.services import TypesenseServer


@pytest.fixture(autouse=True)
def _clear_cache():
    """Overrides the suite's cache flush: these tests must not touch the shared Redis at all."""
    yield


@pytest.fixture(scope="session")
def private_postgres():
    """A PostgreSQL cluster of this session's own, free to be restarted."""
    server = PrivatePostgres().init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory):
    """A redis-server of this session's own, free to be restarted."""
    server = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def private_typesense(tmp_path_factory):
    """A Typesense of this session's own, free to be restarted."""
    server = TypesenseServer(tmp_path_factory.mktemp("typesense-private")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def reliability_services(private_postgres, private_redis, private_typesense, tmp_path_factory) -> Services:
    """The private servers, a migrated template database with the people in it, and media clips."""
    folder = tmp_path_factory.mktemp("reliability")
    return prepare_services(private_postgres, private_redis, private_typesense, folder)


@pytest.fixture
def stack(reliability_services, tmp_path):
    """A fresh database copied from the template, an empty Redis, an index alias of its own."""
    world = new_stack(reliability_services, tmp_path)
    yield world
    world.close()
