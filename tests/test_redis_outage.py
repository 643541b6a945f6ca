"""A real Redis stopped and started again: the API serves, limits follow their policy, sessions survive."""

import subprocess
import time

import pytest
import redis
from django.urls import reverse

from tests.support.services import free_port
from tests.support.waiting import wait_for


class PrivateRedis:
    """A redis-server of this test's own, so stopping it disturbs nobody else."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        wait_for(client.ping, timeout=10, what="redis-server", interval=0.05, ignoring=(redis.ConnectionError,))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path, settings):
    server = PrivateRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": server.url,
            "OPTIONS": {**settings.CACHES["default"]["OPTIONS"], "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    yield server
    server.stop()


def test_redis_stopped_then_back(client, alice, private_redis, settings):
    settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, "login": "100/60"}
    client.force_login(alice)
    before = client.get("/api/v1/jobs/")
    assert before.status_code == 200
    assert before["RateLimit-Limit"] == "300"

    private_redis.stop()
    during = client.get("/api/v1/jobs/")
    assert during.status_code == 200  # the cache misses, the API limiter fails open
    assert "RateLimit-Limit" not in during
    assert during.wsgi_request.user == alice  # cached_db: the session is read from the database
    assert client.get(f"/api/v1/jobs/?page=1&x={time.time()}").status_code == 200
    login = client.post(reverse("admin:login"), {"username": "alice", "password": "alice-password"})
    assert login.status_code == 503  # logins fail closed

    private_redis.start()
    after = client.get("/api/v1/jobs/")
    assert after.status_code == 200
    assert after["RateLimit-Limit"] == "300"  # resumed without a restart
    assert after.wsgi_request.user == alice


def test_flushing_redis_logs_nobody_out(client, alice, private_redis):
    client.force_login(alice)
    assert client.get("/api/v1/jobs/").status_code == 200
    redis.Redis.from_url(private_redis.url).flushall()
    response = client.get("/api/v1/jobs/")
    assert response.status_code == 200
    assert response.wsgi_request.user == alice
