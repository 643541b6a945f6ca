"""The admin's cache and limits page: Redis health, what the keys are for, who gets limited."""

import logging
from collections import Counter
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from redis.exceptions import RedisError

from offload.lib import limits
from offload.lib.redis_state import state_redis

log = logging.getLogger(__name__)

KEY_SAMPLE = 20_000


def instances() -> list[tuple[str, Any]]:
    """(role, client) per Redis instance: one shared by both roles, or the cache and the state apart."""
    from django_redis import get_redis_connection

    if settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL:
        return [("cache and state", state_redis())]
    return [("cache", get_redis_connection("default")), ("state", state_redis())]


def keys_per_namespace(client) -> tuple[list[tuple[str, int]], bool]:
    """Keys grouped by what they are for (sampled on a large instance), and whether it was a sample."""
    counts: Counter[str] = Counter()
    seen = 0
    for name in client.scan_iter(count=1000):
        text = name.decode(errors="replace")
        parts = text.split(":")
        prefix = settings.REDIS_KEY_PREFIX
        if parts[0] == prefix and len(parts) > 1:
            namespace = parts[1] if parts[1] not in ("1", "") else ":".join(parts[1:3])
            # django-redis keys look like "<prefix>:<version>:<key>".
            if parts[1].isdigit() and len(parts) > 2:
                namespace = "cache:" + parts[2].split(".")[0]
        else:
            namespace = "(other) " + parts[0]
        counts[namespace] += 1
        seen += 1
        if seen >= KEY_SAMPLE:
            return counts.most_common(), True
    return counts.most_common(), False


def redis_overview(client) -> dict[str, Any]:
    info = client.info()
    hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
    return {
        "version": info.get("redis_version"),
        "used_memory": info.get("used_memory_human"),
        "peak_memory": info.get("used_memory_peak_human"),
        "maxmemory_policy": info.get("maxmemory_policy"),
        "connected_clients": info.get("connected_clients"),
        "hit_ratio": (hits / (hits + misses)) if hits + misses else None,
        "hits": hits,
        "misses": misses,
        "evicted_keys": info.get("evicted_keys"),
    }


RESET_PERMISSION = "offload.reset_rate_limits"


def cache_page(request: HttpRequest, site) -> HttpResponse:
    """GET: the page. POST: reset one client's limits."""
    if not request.user.is_staff:
        raise PermissionDenied
    may_reset = request.user.has_perm(RESET_PERMISSION)
    if request.method == "POST":
        # Staff status shows the page; resetting someone's limits is a permission of its own.
        if not may_reset:
            raise PermissionDenied
        who = request.POST.get("who", "").strip()
        if not who or len(who) > 200:
            messages.error(request, "Name a client, such as user:12 or ip:203.0.113.9.")
        elif request.POST.get("post") != "yes":
            return _confirm_reset(request, site, who)
        else:
            for scope in settings.OFFLOAD_RATE_LIMITS:
                limits.reset(scope, who)
            messages.success(request, f"Rate limits reset for {who}.")
        return HttpResponseRedirect(reverse("admin:offload_cache"))
    context: dict[str, Any] = {**site.each_context(request), "title": "Cache and rate limits", "may_reset": may_reset}
    try:
        context["instances"] = [
            {"role": role, "redis": redis_overview(client), "keys": keys_per_namespace(client)}
            for role, client in instances()
        ]
        context["limited"] = limits.most_limited()
    except RedisError as exc:
        context["redis_error"] = f"Redis is not answering: {exc}"
    context["limits"] = sorted(settings.OFFLOAD_RATE_LIMITS.items())
    context["fail_closed"] = settings.OFFLOAD_RATE_LIMITS_FAIL_CLOSED
    return TemplateResponse(request, "admin/offload/cache.html", context)


def _confirm_reset(request: HttpRequest, site, who: str) -> HttpResponse:
    """What a reset clears: every rate-limit window of that client."""
    scopes = sorted(settings.OFFLOAD_RATE_LIMITS)
    context = {
        **site.each_context(request),
        "title": f"Reset the rate limits of {who}?",
        "question": f"{who} may send requests again at once: its window in each of these limits is cleared.",
        "items": [f"{scope}: {limit}" for scope, limit in sorted(settings.OFFLOAD_RATE_LIMITS.items())],
        "count": len(scopes),
        "noun": "limit" if len(scopes) == 1 else "limits",
        "button": "Yes, reset them",
        "back": reverse("admin:offload_cache"),
        "back_label": "Cache and rate limits",
        "hidden": [("who", who), ("post", "yes")],
        "form_action": request.path,
    }
    return TemplateResponse(request, "admin/offload/confirm.html", context)


def urls(site) -> list:
    return [path("offload/cache/", site.admin_view(lambda request: cache_page(request, site)), name="offload_cache")]
