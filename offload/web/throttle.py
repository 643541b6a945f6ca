"""Rate limits on incoming HTTP requests: the API (with RateLimit-* headers) and admin logins.

Who a request is, which limits apply and what happens when Redis cannot answer are the
limiter's (offload/ratelimit.py, shared with the websocket consumer); this middleware answers
the request: a 429 with Retry-After, or the RateLimit-* headers on the response.
"""

import math
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from redis.exceptions import RedisError

from offload import tokens
from offload.lib import gate, limits
from offload.ratelimit import check, check_all, client_ip, identify, limit_for, limits_for, through_gate

LOGIN_PATHS = ("/admin/login/",)


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
