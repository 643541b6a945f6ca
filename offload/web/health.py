"""Liveness and readiness probes."""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures

from django.conf import settings
from django.db import connection, connections
from django.http import JsonResponse

from offload.jobs import kinds, live_clusters_per_lane
from offload.lib.redis_state import ping_both
from offload.web.readonly import read_only

log = logging.getLogger(__name__)


@read_only
def live(request):
    return JsonResponse({"status": "ok"})


# name → check; each answers "ok" or says what is wrong, or raises. Apps register theirs in ready().
_checks: dict[str, Callable[[], str]] = {}


def register_check(name: str, check: Callable[[], str]) -> None:
    """Report this dependency's state in /healthz/ready (from an app's ready())."""
    _checks[name] = check


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def check_redis() -> str:
    ping_both()
    return "ok"


def check_workers() -> str:
    """ "ok" when every lane that runs a job kind has a live cluster; otherwise which lanes have none."""
    per_lane = live_clusters_per_lane()
    if not any(per_lane.values()):
        return "none running"
    needed = {kind.lane for kind in kinds.all_kinds()}
    missing = [lane for lane in settings.OFFLOAD_LANES if lane in needed and not per_lane.get(lane)]
    return f"no live cluster in lane {', '.join(missing)}" if missing else "ok"


def lane_check(lane: str) -> Callable[[], str]:
    """The check of one lane (settings.OFFLOAD_LANES): whether a cluster of it reports in."""

    def check() -> str:
        return "ok" if live_clusters_per_lane().get(lane) else "no live cluster"

    return check


# The checks run side by side, each in a daemon thread of its own, so a hung dependency (a
# database host that swallows packets never answers the connect) costs the probe at most
# HEALTH_CHECK_TIMEOUT and never holds up the process's exit. A check still hanging from
# an earlier probe is waited on again, never started twice, so hung checks cannot pile up.
_inflight: dict[str, Future] = {}
_inflight_lock = threading.Lock()


def _in_own_thread(future: Future, name: str, check: Callable[[], str]) -> None:
    try:
        future.set_result(check())
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is its state, reported below
        log.warning("readiness check %s failed: %s", name, exc)
        future.set_result(f"error: {type(exc).__name__}")
    finally:
        # This thread's own connections: a probe every few seconds needs none kept open.
        connections.close_all()


def _start(name: str, check: Callable[[], str]) -> Future:
    with _inflight_lock:
        future = _inflight.get(name)
        if future is None or future.done():
            future = _inflight[name] = Future()
            thread = threading.Thread(target=_in_own_thread, args=(future, name, check), name=f"healthz-{name}")
            thread.daemon = True
            thread.start()
    return future


def run_checks(checks: dict[str, Callable[[], str]], timeout: float) -> dict[str, str]:
    """Each check's answer, or "error: timed out" for one that took longer than `timeout`."""
    futures = {name: _start(name, check) for name, check in checks.items()}
    wait_for_futures(futures.values(), timeout=timeout)
    answers = {}
    for name, future in futures.items():
        if future.done():
            answers[name] = future.result()
        else:
            log.warning("readiness check %s did not answer within %s s", name, timeout)
            answers[name] = "error: timed out"
    return answers


@read_only
def ready(request):
    """200 with each dependency's state; 503 only when the database is unreachable."""
    checks = run_checks(dict(sorted(_checks.items())), timeout=settings.HEALTH_CHECK_TIMEOUT)
    healthy = all(v == "ok" for v in checks.values())
    code = 503 if checks["database"] != "ok" else 200
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks}, status=code)
