"""The Redis cancel flags: how a worker on any host hears of a cancel within a fraction of a second.

The job row's `cancel_requested_at` stays the record, read by the heartbeat; the flag is the
fast path a worker polls while ffmpeg runs. So a flag that Redis could not take is logged, not
raised: the heartbeat still sees the cancel.
"""

import logging

from redis.exceptions import RedisError

from offload.lib.redis_state import key as redis_key
from offload.lib.redis_state import state_redis

log = logging.getLogger(__name__)

# Long enough for any run to see it; a flag left behind expires by itself.
CANCEL_FLAG_TTL = 24 * 3600


def raise_flag(job_id: int) -> None:
    """Tell the job's worker to stop (after the cancel request commits)."""
    try:
        state_redis().set(redis_key("cancel", job_id), 1, ex=CANCEL_FLAG_TTL)
    except RedisError as exc:
        log.warning("cancel flag for job %s not set in Redis (%s); the heartbeat will see it", job_id, exc)


def lower_flag(job_id: int) -> None:
    """Clear the flag, so that a run again is not cancelled by the last one's request."""
    try:
        state_redis().delete(redis_key("cancel", job_id))
    except RedisError as exc:
        log.warning("cancel flag for job %s not cleared in Redis (%s); the runner checks the row", job_id, exc)


def cancel_flagged(job_id: int) -> bool:
    """Whether a cancel was requested, from the shared flag (fast) — raises when Redis is away."""
    return bool(state_redis().exists(redis_key("cancel", job_id)))
