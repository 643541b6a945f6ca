"""API tokens: who a `Token <key>` is, kept in Redis and invalidated exactly.

A service the API's authentication, the rate limiter and the websocket consumer share.

Every API request needs its token's user. An entry under a digest of the key (raw keys never
become Redis keys) says who, as JSON (never a pickle: nothing read from Redis is executed),
and is dropped the moment the token is deleted or its user saved (deactivated, made staff or
not), so a revoked token stops working at once. The entries live on the state instance, where
the API's gate (offload/lib/gate.py) reads one in the same call as the rate limits. With
Redis away, the database answers.
"""

import json
import logging

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from redis.exceptions import RedisError
from rest_framework.authtoken.models import Token

from offload.lib.redis_state import key as state_key
from offload.lib.redis_state import state_redis

log = logging.getLogger(__name__)

TTL = 3600
# A token key is 40 characters; anything much longer is not one.
MAX_KEY_LENGTH = 64
# Stored for a key that names no active user, so floods of bad keys cost no query.
_MISSING = "-"
# What an entry keeps of its user: enough for the API's checks, never the password hash.
_USER_FIELDS = ("id", "username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")


def entry_key(key: str) -> str:
    """Where a token's entry lives (the state instance): an HMAC keyed with SECRET_KEY, so raw keys
    never become Redis keys, and whoever can write to Redis cannot name the entry of a key they
    make up (an entry is plain JSON: one written there would otherwise log them in as anyone)."""
    return state_key("auth", "token", salted_hmac("offload.token.entry", key, algorithm="sha256").hexdigest())


def _entry_for(user) -> str:
    # "<id>|<json>": the gate script (offload/lib/gate.py) reads the id before the bar.
    if user is None or not user.is_active:
        return _MISSING
    return f"{user.pk}|" + json.dumps({name: getattr(user, name) for name in _USER_FIELDS})


def user_from_entry(entry: str | bytes | None):
    """The user an entry describes, or None for a key that names no active user."""
    if isinstance(entry, bytes):
        entry = entry.decode()
    if not entry or entry == _MISSING:
        return None
    fields = json.loads(entry.partition("|")[2])
    user = get_user_model()(**fields)
    user._state.adding = False
    user._state.db = "default"
    return user


def _usable(key) -> bool:
    return isinstance(key, str) and bool(key) and len(key) <= MAX_KEY_LENGTH


def remember(key: str):
    """Look the token up in the database and keep its entry; the active user, or None."""
    token = Token.objects.select_related("user").filter(key=key).first()
    user = token.user if token is not None else None
    try:
        state_redis().set(entry_key(key), _entry_for(user), ex=TTL)
    except RedisError as exc:
        log.warning("token entries unavailable: %s", exc)
    return user if user is not None and user.is_active else None


def user_for_token(key: str):
    """The active user behind a token key, or None."""
    if not _usable(key):
        return None
    try:
        entry = state_redis().get(entry_key(key))
    except RedisError:
        entry = None
    if entry is None:
        return remember(key)
    return user_from_entry(entry)


def token_key(request: HttpRequest) -> str | None:
    """The key of the request's `Authorization: Token <key>`, or None."""
    scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    key = key.strip()
    return key if scheme == "Token" and _usable(key) else None


def knows(request: HttpRequest, key: str, user) -> None:
    """Record who the request's token names, so that DRF's authentication does not ask again."""
    request.offload_token_user = (key, user)


def user_for_request(request: HttpRequest):
    """The active user the request's `Authorization: Token <key>` names, or None; looked up once per request.

    The rate limiter asks first (offload/ratelimit.py), then DRF's authentication: the
    second answer comes from the request, not from another cache round trip.
    """
    scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme != "Token":
        return None
    key = key.strip()
    known = getattr(request, "offload_token_user", None)
    if known is None or known[0] != key:
        known = request.offload_token_user = (key, user_for_token(key))
    return known[1]


def _forget(keys: list[str]) -> None:
    if keys:
        # Errors surface: a revoked token that kept working would be worse than a failed save.
        state_redis().delete(*[entry_key(key) for key in keys])


def forget_token(sender, instance: Token, **kwargs) -> None:
    """post_save/post_delete on Token: the entry for its key is gone."""
    _forget([instance.key])


def forget_users_tokens(sender, instance, **kwargs) -> None:
    """post_save/post_delete on the user model: their token's entry is stale."""
    _forget(list(Token.objects.filter(user_id=instance.pk).values_list("key", flat=True)))


def connect() -> None:
    """Connect the invalidation (from OffloadConfig.ready())."""
    for signal in (post_save, post_delete):
        signal.connect(forget_token, sender=Token, dispatch_uid=f"offload.tokens.token.{signal is post_save}")
        signal.connect(
            forget_users_tokens, sender=get_user_model(), dispatch_uid=f"offload.tokens.user.{signal is post_save}"
        )
