"""Rate limits on incoming requests: the API (with RateLimit-* headers), logins and websockets.

Counting happens in offload.limits (one Lua script, Redis' clock). This module decides who
a request is, which limits apply, and what to do when Redis cannot answer: the API fails
open (serving beats refusing), logins fail closed (a limiter that vanishes must not turn
into unlimited password guessing).
"""

import ipaddress
import logging
import math
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from redis.exceptions import RedisError

from offload import limits

log = logging.getLogger(__name__)

# POSTs that create jobs: scans, probes, enrichment, thumbnails, transcodes and retries.
JOB_CREATING = re.compile(r"^/api/v1/(libraries|media|jobs)/[^/]+/(scan|probe|enrich|thumbnail|transcode|retry)/$")
LOGIN_PATHS = ("/admin/login/",)


@dataclass(frozen=True)
class Limit:
    scope: str
    limit: int
    window: float
    fail_open: bool


def parse_rate(text: str) -> tuple[int, float]:
    """'300/60' → (300 requests, 60 seconds)."""
    count, _, seconds = text.partition("/")
    return int(count), float(seconds or 60)


def limit_for(name: str) -> Limit:
    count, window = parse_rate(settings.OFFLOAD_RATE_LIMITS[name])
    return Limit(name, count, window, fail_open=name not in settings.OFFLOAD_RATE_LIMITS_FAIL_CLOSED)


def client_ip(request: HttpRequest) -> str:
    """The client's address; X-Forwarded-For counts only when it comes from a trusted proxy."""
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    trusted = [ipaddress.ip_network(net, strict=False) for net in settings.OFFLOAD_TRUSTED_PROXIES]

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(remote):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    # The nearest hop that is not one of our proxies is the client as far as we can tell.
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return remote


def _token_user_id(request: HttpRequest) -> int | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Token "):
        return None
    key = header[6:].strip()
    if not key or len(key) > 64:
        return None
    cache_key = f"throttle:token:{key}"
    user_id = cache.get(cache_key)
    if user_id is None:
        from rest_framework.authtoken.models import Token

        user_id = Token.objects.filter(key=key).values_list("user_id", flat=True).first() or 0
        cache.set(cache_key, user_id, timeout=300)
    return user_id or None


def identify(request: HttpRequest) -> tuple[str, bool]:
    """('user:<id>' or 'ip:<addr>', authenticated?) — who the limits count against."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}", True
    token_user = _token_user_id(request)
    if token_user:
        return f"user:{token_user}", True
    return f"ip:{client_ip(request)}", False


def check(limit: Limit, who: str) -> limits.Decision | None:
    """The decision, or None when Redis could not answer and the limit fails open."""
    try:
        return limits.acquire(limit.scope, who, limit.limit, limit.window)
    except RedisError as exc:
        log.warning(
            "rate limiter unavailable for %s (%s): failing %s",
            limit.scope,
            exc,
            "open" if limit.fail_open else "closed",
        )
        if limit.fail_open:
            return None
        raise


def headers(decision: limits.Decision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(max(0, decision.remaining)),
        "RateLimit-Reset": str(math.ceil(decision.reset)),
    }


def too_many(decision: limits.Decision, what: str, scope: str, who: str) -> JsonResponse:
    from offload.admin_cache import record_denial

    record_denial(scope, who)
    retry_after = max(1, math.ceil(decision.retry_after))
    response = JsonResponse(
        {"detail": f"Too many {what}: at most {decision.limit}. Try again in {retry_after} s."}, status=429
    )
    for name, value in headers(decision).items():
        response[name] = value
    response["Retry-After"] = str(retry_after)
    return response


class RateLimitMiddleware:
    """Limits every API request (per user, or per client IP when anonymous) and admin logins."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith("/api/"):
            return self._api(request)
        if request.method == "POST" and path in LOGIN_PATHS:
            return self._login(request)
        return self.get_response(request)

    def _api(self, request: HttpRequest) -> HttpResponse:
        who, authenticated = identify(request)
        names = ["api_user" if authenticated else "api_anon"]
        if request.method == "POST" and JOB_CREATING.match(request.path):
            names.append("jobs_user" if authenticated else "api_anon")
        shown = None
        for name in dict.fromkeys(names):
            decision = check(limit_for(name), who)
            if decision is None:
                continue
            if not decision.allowed:
                return too_many(decision, "job requests" if name == "jobs_user" else "requests", name, who)
            if shown is None or decision.remaining < shown.remaining:
                shown = decision
        response = self.get_response(request)
        if shown is not None:
            for name, value in headers(shown).items():
                response[name] = value
        return response

    def _login(self, request: HttpRequest) -> HttpResponse:
        who = f"ip:{client_ip(request)}"
        try:
            decision = check(limit_for("login"), who)
        except RedisError:
            return JsonResponse({"detail": "Logins are paused: the rate limiter is unavailable."}, status=503)
        if decision is not None and not decision.allowed:
            return too_many(decision, "login attempts", "login", who)
        return self.get_response(request)
