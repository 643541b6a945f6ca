"""The registry of job kinds: what runs a kind, how long it may take, who may see it."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from offload.models import Job
    from offload.runner import JobRun

Handler = Callable[["Job", "JobRun"], dict[str, Any] | None]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler_path: str
    target_type: str = ""
    # Seconds a single attempt may run, plus this many per second of the target's media.
    timeout: int = 600
    timeout_per_media_second: float = 0.0
    # Internal kinds are listed in the API for staff only.
    internal: bool = False

    @property
    def handler(self) -> Handler:
        return import_string(self.handler_path)

    def timeout_for(self, job: "Job") -> int:
        """The attempt's timeout, scaled with the media's duration, never past the cluster's own."""
        longest = int(settings.Q_CLUSTER["timeout"])
        seconds = float(self.timeout)
        if self.timeout_per_media_second and job.target_type == "media":
            from offload.models import MediaItem

            row = MediaItem.objects.filter(pk=job.target_id).values_list("duration", "probed_at").first()
            duration, probed_at = row or (None, None)
            if duration is None and probed_at is None:
                # Not probed yet (the job probes it first): a feature film must not time out.
                return longest
            seconds += self.timeout_per_media_second * (duration or 0)
        return min(int(seconds), longest)


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind("library.scan", "offload.scan.run_scan", target_type="library", timeout=3600),
        JobKind("media.probe", "offload.probe.run_probe", target_type="media", timeout=120),
        JobKind("media.enrich", "offload.enrich.run_enrich", target_type="media", timeout=300),
        JobKind(
            "media.thumbnail",
            "offload.thumbnail.run_thumbnail",
            target_type="media",
            timeout=120,
            timeout_per_media_second=0.5,
        ),
        # Real footage transcodes at 1.5-2x realtime on two cores; allow well past that.
        JobKind(
            "media.transcode",
            "offload.transcode.run_transcode",
            target_type="media",
            timeout=300,
            timeout_per_media_second=3.0,
        ),
        JobKind("search.reindex", "search.tasks.run_reindex", timeout=3600),
        JobKind("system.noop", "offload.system.run_noop", internal=True, timeout=60),
        JobKind("system.sleep", "offload.system.run_sleep", internal=True, timeout=600),
    )
}

PUBLIC_KINDS = tuple(name for name, kind in KINDS.items() if not kind.internal)
INTERNAL_KINDS = tuple(name for name, kind in KINDS.items() if kind.internal)


class UnknownJobKind(LookupError):
    pass


def get_kind(name: str) -> JobKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownJobKind(name) from None
