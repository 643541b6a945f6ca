"""The limiter: which limits a request counts against, who it is, and what to do when Redis cannot answer.

A service the API, the admin's login and the websocket consumer share (offload/web/throttle.py
answers HTTP requests with it; offload/notifications/consumers.py limits connections and
messages). Counting happens in offload.lib.limits (one Lua script, Redis' clock). The API fails
open (serving beats refusing), logins fail closed (a limiter that vanishes must not turn into
unlimited password guessing).
"""

import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from redis.exceptions import RedisError

from offload import tokens
from offload.lib import gate, limits

log = logging.getLogger(__name__)


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
    token_user = tokens.user_for_request(request)
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
