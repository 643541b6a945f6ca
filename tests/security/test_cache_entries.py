"""A pickle written into Redis by anyone but the web process is never run."""

import hashlib
import json
import os
import pickle

import pytest
from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection

from offload.lib.redis_state import key as state_key
from offload.lib.redis_state import state_redis
from offload.tokens import entry_key
from offload.web.sessions import SessionStore

pytestmark = pytest.mark.django_db


class Payload:
    """A pickle that makes a directory when it is loaded: proof that it ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def forge(name: str, marker) -> None:
    """Write the payload under a cache key, as any local process with Redis access could."""
    get_redis_connection("default").set(cache.make_key(name), pickle.dumps(Payload(marker)), ex=60)


def test_a_pickle_under_a_token_entry_is_not_run_and_authenticates_nobody(db, anon_api, tmp_path):
    marker = tmp_path / "ran"
    state_redis().set(entry_key("forged-token"), pickle.dumps(Payload(marker)), ex=60)
    anon_api.get("/api/v1/jobs/", HTTP_AUTHORIZATION="Token forged-token")
    assert not marker.exists()


def test_a_token_entry_forged_under_a_name_anyone_can_compute_authenticates_nobody(db, staff, anon_api):
    # Entries are plain JSON: written where the server would look, one would name any user.
    fields = {"id": staff.pk, "username": "staff", "is_active": True, "is_staff": True, "is_superuser": True}
    forged = f"{staff.pk}|{json.dumps(fields)}"
    state_redis().set(state_key("auth", "token", hashlib.sha256(b"made-up").hexdigest()), forged, ex=60)
    assert anon_api.get("/api/v1/queues/", HTTP_AUTHORIZATION="Token made-up").status_code == 401


def test_a_forged_pickle_under_a_session_key_is_not_run(client, alice, tmp_path):
    client.force_login(alice)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    marker = tmp_path / "ran"
    forge(SessionStore(session_key).cache_key, marker)
    assert client.get("/api/v1/jobs/").status_code == 200  # the session is read from the database again
    assert not marker.exists()


def test_entries_the_web_process_wrote_read_back_and_a_tampered_one_is_a_miss():
    cache.set("probe", {"answer": [1, 2, 3]}, timeout=60)
    assert cache.get("probe") == {"answer": [1, 2, 3]}
    redis = get_redis_connection("default")
    stored = redis.get(cache.make_key("probe"))
    redis.set(cache.make_key("probe"), stored[:-1] + bytes([stored[-1] ^ 1]), ex=60)
    assert cache.get("probe") is None


def test_redis_key_names_do_not_hold_a_session_cookie(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/jobs/").status_code == 200
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    names = b" ".join(get_redis_connection("default").keys("*"))
    assert session_key.encode() not in names
    assert cache.get(SessionStore(session_key).cache_key) is not None


def copy_entry(source: str, target: str) -> None:
    redis = get_redis_connection("default")
    redis.set(cache.make_key(target), redis.get(cache.make_key(source)), ex=60)


def test_alices_session_entry_copied_under_a_made_up_session_key_logs_nobody_in(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/jobs/").status_code == 200
    alices = client.cookies[settings.SESSION_COOKIE_NAME].value
    made_up = "x" * 32
    # The names an attacker can compute for a key of their own: Django's, and a plain digest.
    for name in (
        f"django.contrib.sessions.cached_db{made_up}",
        SessionStore.cache_key_prefix + hashlib.sha256(made_up.encode()).hexdigest(),
    ):
        copy_entry(SessionStore(alices).cache_key, name)
    other = type(client)()
    other.cookies[settings.SESSION_COOKIE_NAME] = made_up
    assert other.get("/api/v1/jobs/").status_code in (401, 403)
