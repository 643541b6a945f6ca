"""The spine's exceptions: what a handler raises to steer its job, and what a request can run into."""


class JobConflict(Exception):
    """The job is not in a state that allows the request (HTTP 409)."""


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key came back with a different request (HTTP 422)."""


class UnknownJobKind(LookupError):
    """No kind of that name is registered."""


class JobFailed(Exception):
    """A permanent failure; the message is the reason the operator reads."""


class TransientJobError(Exception):
    """A failure worth another attempt later (a service away, a timeout upstream)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        # Seconds the other side asked us to wait (Retry-After); the next attempt waits at least that.
        self.retry_after = retry_after


class JobDeferred(Exception):
    """Not now, and not the job's fault (a resource is busy): run again later, no attempt spent."""

    def __init__(self, reason: str, delay: float = 5.0) -> None:
        super().__init__(reason)
        self.delay = delay


class JobCancelled(Exception):
    """Raised inside a handler once a cancel was requested."""


class JobLost(Exception):
    """The job is no longer this attempt's (cancelled, or taken over after a stale heartbeat)."""
