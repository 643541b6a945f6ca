"""Exact rate limits: headers, 429s, per-user and per-IP buckets, fail policies, concurrency."""

import threading
import time

import pytest
import requests
from django.urls import reverse
from rest_framework.test import APIClient

from offload.models import Library, MediaItem


@pytest.fixture
def limits(settings):
    def set_limits(**overrides: str) -> None:
        settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, **overrides}

    return set_limits


@pytest.fixture
def item(alice, library_root):
    library = Library.objects.create(name="A", path=str(library_root), owner=alice)
    return MediaItem.objects.create(library=library, relative_path="a.mp4")


def test_every_api_response_carries_ratelimit_headers(alice_api, anon_api, limits):
    limits(api_user="300/60", api_anon="60/60")
    mine = alice_api.get("/api/v1/jobs/")
    assert mine["RateLimit-Limit"] == "300"
    assert mine["RateLimit-Remaining"] == "299"
    assert 0 < int(mine["RateLimit-Reset"]) <= 60
    assert alice_api.get("/api/v1/jobs/")["RateLimit-Remaining"] == "298"
    anonymous = anon_api.get("/api/v1/jobs/")
    assert anonymous.status_code == 401
    assert anonymous["RateLimit-Limit"] == "60"
    assert alice_api.get("/api/v1/no-such-thing/")["RateLimit-Limit"] == "300"


def test_over_the_limit_answers_429_with_retry_after_and_json(alice_api, bob_api, limits):
    limits(api_user="3/60")
    for _ in range(3):
        assert alice_api.get("/api/v1/jobs/").status_code == 200
    refused = alice_api.get("/api/v1/jobs/")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["RateLimit-Remaining"] == "0"
    assert "Too many requests" in refused.json()["detail"]
    # Bob has his own bucket.
    assert bob_api.get("/api/v1/jobs/").status_code == 200


def test_job_creating_posts_have_their_own_lower_limit(alice_api, item, limits):
    limits(api_user="100/60", jobs_user="2/60")
    assert alice_api.post(f"/api/v1/media/{item.pk}/probe/").status_code == 202
    assert alice_api.post(f"/api/v1/media/{item.pk}/thumbnail/").status_code == 202
    refused = alice_api.post(f"/api/v1/media/{item.pk}/transcode/", {"profile": "h264-480p"}, format="json")
    assert refused.status_code == 429
    assert "job requests" in refused.json()["detail"]
    assert alice_api.get("/api/v1/jobs/").status_code == 200


def test_anonymous_clients_are_counted_per_ip_and_forwarded_for_only_from_trusted_proxies(limits, settings):
    limits(api_anon="1/60")
    first, second = APIClient(REMOTE_ADDR="10.0.0.1"), APIClient(REMOTE_ADDR="10.0.0.2")
    assert first.get("/api/v1/jobs/").status_code == 401
    assert first.get("/api/v1/jobs/").status_code == 429
    assert second.get("/api/v1/jobs/").status_code == 401
    # An untrusted X-Forwarded-For changes nothing: still 10.0.0.1's bucket.
    assert first.get("/api/v1/jobs/", HTTP_X_FORWARDED_FOR="1.2.3.4").status_code == 429
    settings.OFFLOAD_TRUSTED_PROXIES = ["10.0.0.0/24"]
    proxied = APIClient(REMOTE_ADDR="10.0.0.1")
    assert proxied.get("/api/v1/jobs/", HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.7").status_code == 401
    assert proxied.get("/api/v1/jobs/", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    assert proxied.get("/api/v1/jobs/", HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 401


def test_admin_login_is_limited_per_ip(client, limits, db):
    limits(login="2/60")
    for _ in range(2):
        assert client.post(reverse("admin:login"), {"username": "x", "password": "y"}).status_code == 200
    refused = client.post(reverse("admin:login"), {"username": "x", "password": "y"})
    assert refused.status_code == 429
    assert client.get(reverse("admin:login")).status_code == 200


def test_with_redis_away_the_api_fails_open_and_login_fails_closed(alice_api, client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    served = alice_api.get("/api/v1/jobs/")
    assert served.status_code == 200
    assert "RateLimit-Limit" not in served
    refused = client.post(reverse("admin:login"), {"username": "x", "password": "y"})
    assert refused.status_code == 503
    assert "rate limiter is unavailable" in refused.json()["detail"]


@pytest.mark.slow
def test_200_concurrent_requests_over_two_servers_let_exactly_50_through(asgi_server, alice):
    from rest_framework.authtoken.models import Token

    env = {"OFFLOAD_RATE_API_USER": "50/60"}
    servers = [asgi_server(**env), asgi_server(**env)]
    token = Token.objects.create(user=alice).key
    # 200 clients, each with its own connection, released together: 100 on each server.
    start = threading.Barrier(200)
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    began = time.time()

    def client(n: int) -> None:
        server = servers[n % 2]
        start.wait()
        r = requests.get(f"{server.url}/api/v1/profiles/", headers={"Authorization": f"Token {token}"}, timeout=60)
        with lock:
            answers.append((r.status_code, r.headers.get("Retry-After")))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - began
    codes = [code for code, _ in answers]
    assert len(codes) == 200
    assert codes.count(200) == 50
    assert codes.count(429) == 150
    # The window opens when the first of the 50 leaves it: within 60 s of the burst's start.
    waits = [int(retry) for code, retry in answers if code == 429]
    assert all(60 - elapsed - 1 <= wait <= 60 for wait in waits), (min(waits), max(waits), elapsed)


def test_a_job_request_counts_both_its_windows_in_one_redis_call(alice_api, item, limits, monkeypatch):
    from offload.lib.redis_state import state_redis

    limits(api_user="100/60", jobs_user="10/60")
    client = state_redis()
    sent = []
    original = client.execute_command

    def counting(*args, **kwargs):
        sent.append(args[0])
        return original(*args, **kwargs)

    # The first request loads the script into Redis.
    assert alice_api.post(f"/api/v1/media/{item.pk}/enrich/").status_code == 202
    monkeypatch.setattr(client, "execute_command", counting)
    response = alice_api.post(f"/api/v1/media/{item.pk}/probe/")
    assert response.status_code == 202
    assert [c for c in sent if c.upper().startswith("EVAL")] == ["EVALSHA"]
    # Both windows were counted: the headers show the one closest to refusing.
    assert response["RateLimit-Limit"] == "10"
    assert response["RateLimit-Remaining"] == "8"
