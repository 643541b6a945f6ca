"""Quieting a cluster: it finishes the jobs it runs and takes no more, whichever host it runs on.

The flag is a key in the state Redis, named by the cluster's host and its sentinel's pid (what
django-q2's stat reports, and the parent of the pusher that takes tasks off the queue). The lane
brokers' dequeue reads it before each poll (offload/jobs/lanes.py): a
quiet cluster's pusher hands its workers nothing new, so they finish what they hold and go idle.
A restarted cluster is a new one, with a new sentinel pid, and starts awake.
"""

import logging
import os
import socket

from redis.exceptions import RedisError

from offload.lib.redis_state import key, state_redis

log = logging.getLogger(__name__)

# The flag outlives any cluster worth quieting; it only keeps Redis from holding stale ones for ever.
QUIET_SECONDS = 7 * 24 * 3600


def _flag(host: str, sentinel_pid: int) -> str:
    return key("cluster-quiet", host, sentinel_pid)


def set_quiet(host: str, sentinel_pid: int, quiet: bool) -> None:
    """Quiet (or wake) the cluster whose sentinel runs as this pid on this host. Redis errors surface."""
    if quiet:
        state_redis().set(_flag(host, sentinel_pid), "1", ex=QUIET_SECONDS)
    else:
        state_redis().delete(_flag(host, sentinel_pid))


def quieted(clusters: list[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of these (host, sentinel pid) clusters are quiet: one round trip; none when Redis is away."""
    if not clusters:
        return set()
    try:
        found = state_redis().mget([_flag(host, pid) for host, pid in clusters])
    except (RedisError, OSError) as exc:
        log.warning("could not read which clusters are quiet: %s", exc)
        return set()
    return {cluster for cluster, flag in zip(clusters, found, strict=True) if flag is not None}


# Whether the last read failed: the pusher asks before every poll, so an outage is logged once.
_unreadable = False


def this_cluster_is_quiet() -> bool:
    """Whether the cluster this pusher belongs to (its parent, the sentinel) was quieted.

    With Redis away the cluster keeps working: a lost flag must not stop every lane.
    """
    global _unreadable
    try:
        quiet = state_redis().exists(_flag(socket.gethostname(), os.getppid())) > 0
    except (RedisError, OSError) as exc:
        if not _unreadable:
            log.warning("could not read whether this cluster is quiet (it goes on taking jobs): %s", exc)
        _unreadable = True
        return False
    _unreadable = False
    return quiet
