"""Liveness and readiness probes."""

import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)


@require_GET
def live(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_redis() -> str:
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()
    return "ok"


def _check_workers() -> str:
    from django_q.status import Stat

    stats = Stat.get_all()
    if not stats:
        return "none running"
    return "ok"


def _check_search() -> str:
    from search.typesense import health

    return health()


@require_GET
def ready(request):
    """200 with each dependency's state; 503 only when the database is unreachable."""
    checks: dict[str, str] = {}
    for name, check in (
        ("database", _check_database),
        ("redis", _check_redis),
        ("search", _check_search),
        ("workers", _check_workers),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency is its state, reported below
            log.warning("readiness check %s failed: %s", name, exc)
            checks[name] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    code = 503 if checks["database"] != "ok" else 200
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks}, status=code)
