"""The registry of job kinds: one registration says everything about a kind.

A kind is registered once, from its app's `ready()`, with its handler, its target type,
who may request it, its rate-limit scope and its default timeout. The API's job actions,
the admin's actions, the job-creation rate limit and the worker all read the registration,
so a new kind needs its handler module and one `register()` call (see docs/jobs.md).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from offload.jobs.errors import UnknownJobKind
from offload.models import Job, MediaItem

# handler(job, target, run) → the job's result. `target` is the job's target, loaded and checked
# by the runner (None for a kind without one); `run` is the attempt's offload.jobs.runner.JobRun
# (progress, cancellation). Typed loosely here: the runner imports this module.
Handler = Callable[[Job, Any, Any], dict[str, Any] | None]

# Who may ask for a kind: anyone who can see its target, or staff alone.
VIEWERS = "viewers"
STAFF = "staff"


@dataclass(frozen=True)
class Choice:
    """A request parameter whose value is one of a set known at request time (a transcode's profile)."""

    name: str
    choices: Callable[[], Iterable[str]]
    help_text: str = ""
    # How a value reads in the admin's choice list.
    describe: Callable[[str], str] | None = None


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    # The model a job acts on ("media", "library"), or "" for none.
    target_type: str = ""
    # The verb under which people request it: POST /api/v1/<targets>/{id}/<action>/ and the
    # admin action of the same name. Empty: only code queues it (a pipeline stage, a schedule).
    action: str = ""
    label: str = ""
    requested_by: str = VIEWERS
    # The rate-limit scope a request for this kind counts against, besides the API's own.
    rate_limit: str = "jobs_user"
    params: tuple[Choice, ...] = ()
    # Seconds a single attempt may run, plus this many per second of the target's media.
    timeout: int = 600
    timeout_per_media_second: float = 0.0
    # Internal kinds are listed in the API for staff only.
    internal: bool = False
    # The lane (a django-q2 cluster, settings.OFFLOAD_LANES) whose workers run it: long CPU
    # work goes to "media", so it never holds back the quick jobs of the default lane.
    lane: str = "default"
    # Extra checks at request time, beyond access: raise ValueError with the reason.
    validate: Callable[[Any, dict[str, Any]], None] | None = field(default=None, compare=False)

    def timeout_for(self, job: Job) -> int:
        """The attempt's timeout, scaled with the media's duration, never past the cluster's own."""
        longest = int(settings.Q_CLUSTER["timeout"])
        seconds = float(self.timeout)
        if self.timeout_per_media_second and job.target_type == "media":
            row = MediaItem.objects.filter(pk=job.target_id).values_list("duration", "probed_at").first()
            duration, probed_at = row or (None, None)
            if duration is None and probed_at is None:
                # Not probed yet (the job probes it first): a feature film must not time out.
                return longest
            seconds += self.timeout_per_media_second * (duration or 0)
        return min(int(seconds), longest)

    def clean_params(self, target: Any, given: dict[str, Any]) -> dict[str, Any]:
        """The request's params for this kind, checked; ValueError names what is wrong."""
        params = {}
        for choice in self.params:
            value = given.get(choice.name)
            allowed = list(choice.choices())
            if value not in allowed:
                raise ValueError(f"Unknown {choice.name} {value!r}; choose one of {', '.join(allowed)}.")
            params[choice.name] = value
        if self.validate is not None:
            self.validate(target, params)
        return params

    def may_request(self, user) -> bool:
        return self.requested_by == VIEWERS or bool(user.is_staff)


_registry: dict[str, JobKind] = {}


def register(*kinds: JobKind) -> None:
    """Add kinds to the registry; registering the same name again replaces it."""
    for kind in kinds:
        if kind.lane not in settings.OFFLOAD_LANES:
            raise ValueError(f"{kind.name}: unknown lane {kind.lane!r}; lanes are {', '.join(settings.OFFLOAD_LANES)}.")
        _registry[kind.name] = kind


def unregister(name: str) -> None:
    _registry.pop(name, None)


def get_kind(name: str) -> JobKind:
    try:
        return _registry[name]
    except KeyError:
        raise UnknownJobKind(name) from None


def all_kinds() -> list[JobKind]:
    return list(_registry.values())


def names() -> list[str]:
    return list(_registry)


def internal_names() -> list[str]:
    return [name for name, kind in _registry.items() if kind.internal]


def requestable(target_type: str) -> list[JobKind]:
    """The kinds people request on a target of this type, in registration order."""
    return [kind for kind in _registry.values() if kind.action and kind.target_type == target_type]
