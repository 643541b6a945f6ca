"""/healthz/ready's checks are bounded, and `check --deploy` is clean with production settings."""

import os
import secrets
import subprocess
import sys
import threading

import pytest
import requests

from offload.web import health
from tests.support.cluster import BASE_DIR


@pytest.fixture
def hanging_search(monkeypatch, settings):
    """A search check that blocks until released, like a server that accepted and went silent."""
    settings.HEALTH_CHECK_TIMEOUT = 0.2
    release = threading.Event()
    calls: list[int] = []

    def hang() -> str:
        calls.append(1)
        release.wait(30)
        return "ok"

    monkeypatch.setitem(health._checks, "search", hang)
    yield calls
    release.set()


@pytest.mark.django_db
def test_a_hanging_check_is_reported_as_timed_out_and_the_others_still_answer(anon_api, hanging_search):
    response = anon_api.get("/healthz/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["search"] == "error: timed out"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ok"
    assert body["status"] == "degraded"


@pytest.mark.django_db
def test_a_check_still_hanging_is_waited_on_again_not_started_twice(anon_api, hanging_search):
    for _ in range(3):
        assert anon_api.get("/healthz/ready").json()["checks"]["search"] == "error: timed out"
    assert len(hanging_search) == 1


@pytest.mark.django_db
def test_a_check_that_raises_reports_its_error_type(anon_api, monkeypatch):
    def broken() -> str:
        raise ConnectionRefusedError("no")

    monkeypatch.setitem(health._checks, "redis", broken)
    body = anon_api.get("/healthz/ready").json()
    assert body["checks"]["redis"] == "error: ConnectionRefusedError"
    assert body["checks"]["database"] == "ok"


@pytest.mark.slow
def test_ready_answers_503_when_the_database_never_answers_and_live_still_answers(asgi_server, silent_server):
    server = asgi_server(DATABASE_URL=f"postgres://postgres@127.0.0.1:{silent_server}/offload")
    # The database check hangs in its thread; the probe answers after its bound all the same.
    response = requests.get(f"{server.url}/healthz/ready", timeout=20)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "error: timed out"
    assert response.json()["checks"]["redis"] == "ok"
    assert requests.get(f"{server.url}/healthz/live", timeout=5).status_code == 200


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "offload.example.com",
        # Production runs Typesense with a key of its own; the development default fails the check.
        "TYPESENSE_API_KEY": secrets.token_urlsafe(32),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_production_settings_send_cookies_over_https_only(tmp_path):
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0, "
        "s.SECURE_REDIRECT_EXEMPT]))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # Probes and scrapes stay reachable over plain HTTP even when the app redirects to HTTPS.
    assert done.stdout.strip().splitlines()[-1] == '[true, true, true, ["^healthz/", "^metrics$"]]'
