"""API tokens: who a `Token <key>` is, read from the cache and invalidated exactly.

Every API request needs its token's user. The answer is cached under a digest of the key
(raw keys never become Redis keys) and dropped the moment the token is deleted or its user
saved (deactivated, made staff or not), so a revoked token stops working at once. With the
cache away, the database answers.
"""

import logging

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from redis.exceptions import RedisError
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

log = logging.getLogger(__name__)

TTL = 3600
# A token key is 40 characters; anything much longer is not one.
MAX_KEY_LENGTH = 64
_MISSING = 0  # cached for a key that names no token, so floods of bad keys cost no query


def _cache_key(key: str) -> str:
    # Keyed with SECRET_KEY: whoever can write to Redis cannot name the entry of a key they
    # make up, so a copied (validly signed) entry authenticates nobody.
    return "auth:token:" + salted_hmac("offload.token.cache", key, algorithm="sha256").hexdigest()


def user_for_token(key: str):
    """The active user behind a token key, or None."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        return None
    name = _cache_key(key)
    try:
        found = cache.get(name)
    except (RedisError, OSError):
        found = None
    if found is None:
        token = Token.objects.select_related("user").filter(key=key).first()
        found = token.user if token is not None else _MISSING
        try:
            cache.set(name, found, timeout=TTL)
        except (RedisError, OSError) as exc:
            log.warning("token cache unavailable: %s", exc)
    if found == _MISSING or not found.is_active:
        return None
    return found


def user_for_request(request: HttpRequest):
    """The active user the request's `Authorization: Token <key>` names, or None; looked up once per request.

    The rate limiter asks first (offload/web/throttle.py), then DRF's authentication: the
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


def forget_token(sender, instance: Token, **kwargs) -> None:
    """post_save/post_delete on Token: the cached answer for its key is gone."""
    cache.delete(_cache_key(instance.key))


def forget_users_tokens(sender, instance, **kwargs) -> None:
    """post_save/post_delete on the user model: their token's cached user is stale."""
    keys = Token.objects.filter(user_id=instance.pk).values_list("key", flat=True)
    cache.delete_many([_cache_key(key) for key in keys])


def connect() -> None:
    """Connect the invalidation (from OffloadConfig.ready())."""
    for signal in (post_save, post_delete):
        signal.connect(forget_token, sender=Token, dispatch_uid=f"offload.tokens.token.{signal is post_save}")
        signal.connect(
            forget_users_tokens, sender=get_user_model(), dispatch_uid=f"offload.tokens.user.{signal is post_save}"
        )


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication, answered from the token cache (or the request, when the limiter asked)."""

    def authenticate(self, request):
        # DRF makes an authenticator per request: the request it serves can be kept on it.
        self.http_request = request._request
        return super().authenticate(request)

    def authenticate_credentials(self, key: str):
        known = getattr(self.http_request, "offload_token_user", None)
        user = known[1] if known is not None and known[0] == key else user_for_token(key)
        if user is None:
            raise AuthenticationFailed("Invalid token.")
        return (user, None)
