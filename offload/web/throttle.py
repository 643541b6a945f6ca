"""Rate limits on incoming requests: the API (with RateLimit-* headers), logins and websockets.

Counting happens in offload.lib.limits (one Lua script, Redis' clock). This module decides who
a request is, which limits apply, and what to do when Redis cannot answer: the API fails
open (serving beats refusing), logins fail closed (a limiter that vanishes must not turn
into unlimited password guessing).
"""

import ipaddress
import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from redis.exceptions import RedisError

from offload.api import tokens
from offload.api.tokens import user_for_request
from offload.lib import gate, limits

log = logging.getLogger(__name__)

LOGIN_PATHS = ("/admin/login/",)


@dataclass(frozen=True)
class Limit:
    scope: str
    limit: int
    window: float
    fail_open: bool


def limit_for(name: str) -> Limit:
    count, window = limits.parse_rate(settings.OFFLOAD_RATE_LIMITS[name])
    return Limit(name, count, window, fail_open=name not in settings.OFFLOAD_RATE_LIMITS_FAIL_CLOSED)


def limits_for(name: str, scope: str) -> list[Limit]:
    """The request's own limit, then its kind's scope when it has one: the order they are counted in."""
    return [limit_for(name), *([limit_for(scope)] if scope else [])]


def is_trusted_proxy(address: str) -> bool:
    """Whether the address is one of OFFLOAD_TRUSTED_PROXIES (addresses or CIDR networks)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.OFFLOAD_TRUSTED_PROXIES)


def client_ip(request: HttpRequest) -> str:
    """The client's address; X-Forwarded-For counts only when it comes from a trusted proxy."""
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    if not is_trusted_proxy(remote):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    # The nearest hop that is not one of our proxies is the client as far as we can tell.
    for hop in reversed(hops):
        if not is_trusted_proxy(hop):
            return hop
    return remote


def identify(request: HttpRequest) -> tuple[str, bool]:
    """('user:<id>' or 'ip:<addr>', authenticated?) — who the limits count against."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}", True
    token_user = user_for_request(request)
    if token_user is not None:
        return f"user:{token_user.pk}", True
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


def check_all(limits_: list[Limit], who: str) -> list[limits.Decision]:
    """Every limit's decision in one round trip, up to the first refusal; [] when Redis could not
    answer and every limit fails open."""
    try:
        return limits.acquire_all([limits.Window(li.scope, who, li.limit, li.window) for li in limits_])
    except RedisError as exc:
        closed = [li.scope for li in limits_ if not li.fail_open]
        log.warning(
            "rate limiter unavailable for %s (%s): failing %s",
            ", ".join(li.scope for li in limits_),
            exc,
            "closed" if closed else "open",
        )
        if closed:
            raise
        return []


# The answer-cache namespace a job request changes (offload.api.caching): bumped by the gate.
JOBS = "jobs"


def through_gate(request: HttpRequest, scope: str) -> gate.Passage | None:
    """A token request's user and windows from the gate (one call to Redis); None: the general way.

    A job request (one with a scope) also moves on the job answers of its user and of staff
    before its write (offload/lib/gate.py). None for a session, no token, a token Redis does
    not know yet (looked up in the database now), or Redis away.
    """
    key = tokens.token_key(request)
    session_user = getattr(request, "user", None)
    if key is None or (session_user is not None and session_user.is_authenticated):
        return None
    windows = limits_for("api_user", scope)
    bumps = [(JOBS, gate.USER), (JOBS, gate.STAFF)] if scope else []
    try:
        passage = gate.pass_gate(tokens.entry_key(key), [(w.scope, w.limit, w.window) for w in windows], bumps)
    except RedisError as exc:
        log.warning("the API gate is unavailable (%s): answering without it", exc)
        return None
    if passage.entry is None:
        tokens.knows(request, key, tokens.remember(key))
        return None
    user = tokens.user_from_entry(passage.entry)
    tokens.knows(request, key, user)
    if user is None:
        return None  # counted as anonymous, by address
    if bumps and passage.allowed:
        gate.prebumped.set(frozenset({(JOBS, str(user.pk)), (JOBS, gate.STAFF)}))
    return passage


def view_scope(request: HttpRequest) -> str:
    """The extra scope the view this request goes to declares for its method, or ""."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return ""
    return rate_limit_scope(match.func, request.method)


def headers(decision: limits.Decision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(max(0, decision.remaining)),
        "RateLimit-Reset": str(math.ceil(decision.reset)),
    }


def too_many(decision: limits.Decision, what: str, scope: str, who: str) -> JsonResponse:
    limits.record_denial(scope, who)
    retry_after = max(1, math.ceil(decision.retry_after))
    response = JsonResponse(
        {"detail": f"Too many {what}: at most {decision.limit}. Try again in {retry_after} s."}, status=429
    )
    for name, value in headers(decision).items():
        response[name] = value
    response["Retry-After"] = str(retry_after)
    return response


@dataclass
class RateLimitState:
    """Who an API request counts against, and the decision its RateLimit-* headers show."""

    who: str
    authenticated: bool
    shown: limits.Decision | None


def rate_limit_scope(view_func, method: str) -> str:
    """The extra scope the view's handler for this method declares (`rate_limit_scope`), or ""."""
    cls = getattr(view_func, "cls", None)
    if cls is None:
        return ""
    # A viewset maps methods to its actions; a plain APIView handles a method by its name.
    handler_name = getattr(view_func, "actions", {}).get(method.lower(), method.lower())
    return getattr(getattr(cls, handler_name, None), "rate_limit_scope", "")


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
        # A request for a job also counts against its kind's own scope: both windows in one
        # call to Redis. Anonymous requests have one limit for everything (their job POSTs
        # are refused later anyway), so they skip the URL lookup.
        session_user = getattr(request, "user", None)
        signed_in = tokens.token_key(request) is not None or bool(session_user and session_user.is_authenticated)
        scope = view_scope(request) if signed_in else ""
        passage = through_gate(request, scope)
        if passage is not None:
            who, authenticated, decisions = f"user:{passage.user_id}", True, passage.decisions
            name = "api_user"
        else:
            who, authenticated = identify(request)
            name = "api_user" if authenticated else "api_anon"
            scope = scope if authenticated else ""
            decisions = check_all(limits_for(name, scope), who)
        try:
            return self._answer(request, who, authenticated, name, scope, decisions)
        finally:
            gate.lift_later(gate.prebumped.get())
            gate.prebumped.set(frozenset())

    def _answer(
        self, request: HttpRequest, who: str, authenticated: bool, name: str, scope: str, decisions: list
    ) -> HttpResponse:
        if decisions and not decisions[-1].allowed:
            refused = name if len(decisions) == 1 else scope
            return too_many(decisions[-1], "requests" if refused == name else "job requests", refused, who)
        # The headers show the window closest to refusing.
        shown = min(decisions, key=lambda d: d.remaining) if decisions else None
        request.offload_ratelimit = RateLimitState(who, authenticated, shown)
        response = self.get_response(request)
        shown = request.offload_ratelimit.shown
        if shown is not None:
            for header, value in headers(shown).items():
                response[header] = value
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
