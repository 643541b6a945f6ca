"""Errors are JSON for programs; /metrics is not for everyone."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/api/v1/libraries/", {"data": "x" * (20 * 1024 * 1024), "content_type": "application/json"}, 400),
        ("get", "/api/v1/libraries/", {"HTTP_HOST": "evil.example"}, 400),
        ("post", "/healthz/ready", {}, 405),
        ("post", "/metrics", {}, 405),
        ("post", "/healthz/live", {}, 405),
    ],
)
def test_errors_of_the_api_probes_and_metrics_are_json_not_html(staff, settings, method, path, kwargs, status):
    settings.DEBUG = False
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    token = Token.objects.create(user=staff).key
    response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Token {token}", **kwargs)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


def test_a_csrf_refusal_under_the_api_is_json(rf):
    import json

    from offload.api.errors import csrf_failure

    response = csrf_failure(rf.post("/api/v1/anything/"), "CSRF token missing.")
    assert response.status_code == 403 and json.loads(response.content)["detail"].startswith("CSRF")
    assert csrf_failure(rf.post("/admin/login/"), "x")["Content-Type"].startswith("text/html")


def test_metrics_are_served_to_loopback_or_the_bearer_token_and_refused_to_others(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403 and refused["Content-Type"].startswith("application/json")
    settings.METRICS_TOKEN = "scrape-token"
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token").status_code == 200
    )
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope").status_code == 403
    settings.OFFLOAD_METRICS_ALLOWED_IPS = ["203.0.113.0/24"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200
    # A forged X-Forwarded-For from an untrusted client changes nothing.
    settings.OFFLOAD_METRICS_ALLOWED_IPS = ["127.0.0.1"]
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


@pytest.mark.parametrize("debug", [True, False])
def test_a_bad_host_under_the_api_is_json_even_with_debug_on(db, settings, debug):
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/libraries/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "Traceback" not in response.content.decode()
