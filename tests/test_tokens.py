"""API tokens are answered from Redis, and a deleted token or a deactivated user stops working at once."""

from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from offload.tokens import user_for_token


def test_a_known_token_is_answered_without_the_database_after_the_first_request(alice, alice_api):
    cache.clear()
    assert alice_api.get("/api/v1/jobs/").status_code == 200
    key = Token.objects.get(user=alice).key
    with CaptureQueriesContext(connection) as queries:
        assert user_for_token(key) == alice
    assert not [q for q in queries.captured_queries if "authtoken_token" in q["sql"]]


def test_a_deleted_token_is_refused_at_once(alice, alice_api):
    assert alice_api.get("/api/v1/jobs/").status_code == 200  # cached now
    Token.objects.filter(user=alice).delete()
    assert alice_api.get("/api/v1/jobs/").status_code == 401


def test_a_deactivated_user_is_refused_at_once(alice, alice_api):
    assert alice_api.get("/api/v1/jobs/").status_code == 200
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert alice_api.get("/api/v1/jobs/").status_code == 401


def test_a_user_who_loses_staff_status_loses_staff_answers_at_once(staff, staff_api, alice):
    assert staff_api.get("/api/v1/queues/").status_code in (200, 404)  # whatever the endpoint, it is staff's
    token = Token.objects.get(user=staff).key
    assert user_for_token(token).is_staff
    staff.is_staff = False
    staff.save(update_fields=["is_staff"])
    assert not user_for_token(token).is_staff


def test_unknown_and_absurd_keys_are_refused(db, anon_api):
    assert user_for_token("x" * 40) is None
    assert user_for_token("x" * 5000) is None
    anon_api.credentials(HTTP_AUTHORIZATION="Token " + "x" * 40)
    assert anon_api.get("/api/v1/jobs/").status_code == 401


def test_raw_token_keys_never_become_cache_keys(alice, alice_api):
    from django_redis import get_redis_connection

    assert alice_api.get("/api/v1/jobs/").status_code == 200
    key = Token.objects.get(user=alice).key
    names = [name.decode() for name in get_redis_connection("default").scan_iter(match="*auth:token:*")]
    assert names and not any(key in name for name in names)


def test_a_request_looks_its_token_up_once_for_the_rate_limiter_and_authentication_alike(alice, alice_api, monkeypatch):
    from offload.lib.redis_state import state_redis

    client = state_redis()
    original = client.execute_command
    reads = []

    def counting(*args, **kwargs):
        # The entry is read by a GET, or inside the API gate's script (its name among the arguments).
        if args[0] in ("GET", "EVALSHA", "EVAL") and any("auth:token:" in str(arg) for arg in args[1:]):
            reads.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(client, "execute_command", counting)
    for _ in range(2):  # unknown to Redis at first, then known
        reads.clear()
        assert alice_api.get("/api/v1/jobs/").status_code == 200
        assert len(reads) == 1, reads
