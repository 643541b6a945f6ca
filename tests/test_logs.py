"""Logs: LOG_FORMAT=json gives one JSON object per line; request ids; job ids and kinds on worker lines."""

import io
import json
import logging
import os
import signal
import subprocess
import sys

import pytest
import requests

from offload import jobs, logs
from offload.jobs import kinds, runner
from tests.support import kinds_for_tests
from tests.support.cluster import BASE_DIR, wait_for
from tests.support.services import free_port


@pytest.fixture
def json_lines():
    """Every record logged meanwhile, through the JSON formatter as LOG_FORMAT=json configures it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


@pytest.mark.django_db
def test_every_line_logged_during_a_request_carries_the_id_the_response_returns(client, json_lines):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    request_id = response["X-Request-ID"]
    lines = [line for line in json_lines() if line["logger"] == "django.request"]
    assert lines and all(line["request_id"] == request_id for line in lines)
    assert {"time", "level", "logger", "message"} <= set(lines[0])


@pytest.mark.django_db
def test_a_trusted_proxys_request_id_is_honoured(client, settings):
    settings.OFFLOAD_TRUSTED_PROXIES = ["127.0.0.1"]
    response = client.get("/healthz/live", HTTP_X_REQUEST_ID="edge-7f3a:42")
    assert response["X-Request-ID"] == "edge-7f3a:42"


@pytest.mark.django_db
@pytest.mark.parametrize("sent", ["edge-7f3a:42", 'bad"id\nInjected: yes', "x" * 500])
def test_an_untrusted_or_malformed_request_id_is_replaced_with_a_fresh_one(client, settings, sent):
    settings.OFFLOAD_TRUSTED_PROXIES = [] if sent == "edge-7f3a:42" else ["127.0.0.1"]
    first = client.get("/healthz/live", HTTP_X_REQUEST_ID=sent)["X-Request-ID"]
    second = client.get("/healthz/live", HTTP_X_REQUEST_ID=sent)["X-Request-ID"]
    assert first != sent and second != sent and first != second
    assert len(first) == 32


@pytest.mark.django_db
def test_a_workers_lines_carry_the_job_id_and_kind(alice, json_lines):
    crashing = kinds.JobKind("test.crashing", kinds_for_tests.run_crashing, internal=True)
    with kinds_for_tests.registered(crashing):
        job, _ = jobs.enqueue("test.crashing", user=alice)
        runner.execute(job.pk)
    lines = [line for line in json_lines() if line["logger"] == "offload.jobs.runner"]
    assert lines, json_lines()
    assert all(line["job_id"] == job.pk and line["job_kind"] == "test.crashing" for line in lines)
    assert "ZeroDivisionError" in lines[0]["exception"]
    # Outside the job, nothing is bound.
    assert logs.current() == {}


def test_log_format_json_writes_one_json_object_per_line():
    code = (
        "import django, logging; django.setup();"
        "logging.getLogger('offload.example').warning('one %s', 'line');"
        "logging.getLogger('django-q').error('from the cluster')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_FORMAT": "json", "SECRET_KEY": "x" * 50}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("offload.example", "one line"),
        ("django-q", "from the cluster"),
    ]


def test_an_unknown_log_format_is_refused():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_FORMAT": "xml"}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "LOG_FORMAT must be plain or json" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi", "--bind", "127.0.0.1:{port}"],
        ["-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", "{port}"],
    ],
    ids=["gunicorn", "uvicorn"],
)
def test_the_servers_own_lines_are_json_too(tmp_path, command):
    port = free_port()
    env = {**os.environ, "LOG_FORMAT": "json", "SECRET_KEY": "k" * 60}
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, *(part.format(port=port) for part in command)],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz/live"), 30, "the server")
            missing = requests.get(f"http://127.0.0.1:{port}/no-such-page/", timeout=5)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    loggers = {line["logger"] for line in lines}
    assert {"django.request"} < loggers and any(name.endswith(".access") for name in loggers)
    (not_found,) = [line for line in lines if line["logger"] == "django.request"]
    assert not_found["request_id"] == missing.headers["X-Request-ID"]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
