"""Series of the web side: rate-limit decisions and open websocket connections."""

from prometheus_client import Counter, Gauge

RATELIMIT_DECISIONS = Counter(
    "offload_ratelimit_decisions_total",
    "Rate-limit answers, by scope and decision (allowed or denied).",
    ["scope", "decision"],
)
# livesum: the sum over live processes; a dead process's connections are gone with it.
WS_CONNECTIONS = Gauge(
    "offload_ws_connections",
    "Open websocket connections.",
    multiprocess_mode="livesum",
)


def ratelimit_decision(scope: str, allowed: bool) -> None:
    """Count one rate-limit answer."""
    RATELIMIT_DECISIONS.labels(scope=scope, decision="allowed" if allowed else "denied").inc()


def ws_connected() -> None:
    """A websocket connection opened in this process."""
    WS_CONNECTIONS.inc()


def ws_disconnected() -> None:
    """A websocket connection of this process closed."""
    WS_CONNECTIONS.dec()
