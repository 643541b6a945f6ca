"""The media.probe job: read an item's technical metadata with ffprobe."""

import re
from typing import Any

from django.utils import timezone

from offload.jobs import JobFailed, JobKind, JobRun
from offload.lib import ffmpeg
from offload.lib.paths import InvalidPath, resolve_item_path
from offload.models import Job, MediaItem, MediaKind, MediaStatus

EPISODE_PATTERN = re.compile(r"(?:\bS\d{1,2}\s*E\d{1,3}\b|\b\d{1,2}x\d{2,3}\b)", re.IGNORECASE)


def guess_kind(relative_path: str, technical: dict[str, Any]) -> str:
    """movie, episode, track or other, from the streams and the file name; pure."""
    if technical.get("video_codec") and technical.get("width"):
        if EPISODE_PATTERN.search(relative_path.replace(".", " ").replace("_", " ")):
            return MediaKind.EPISODE
        return MediaKind.MOVIE
    if technical.get("audio_codec"):
        return MediaKind.TRACK
    return MediaKind.OTHER


def _mark(item: MediaItem, status: str, reason: str) -> None:
    item.status, item.status_reason = status, reason
    item.save(update_fields=["status", "status_reason", "updated_at"])


def run_probe(job: Job, item: MediaItem, run: JobRun) -> dict[str, Any]:
    try:
        path = resolve_item_path(item.library.root, item.relative_path)
    except InvalidPath as exc:
        _mark(item, MediaStatus.CORRUPT, str(exc))
        raise JobFailed(str(exc)) from None
    if not path.is_file():
        _mark(item, MediaStatus.MISSING, "The file is gone from the library folder.")
        raise JobFailed(f"The file {item.relative_path} no longer exists.")
    run.progress(None, force=True)
    try:
        data = ffmpeg.probe(path)
    except ffmpeg.ProbeError as exc:
        reason = f"Not a playable media file: {exc}"
        _mark(item, MediaStatus.CORRUPT, reason)
        raise JobFailed(reason) from None

    technical = ffmpeg.technical_metadata(data)
    for field, value in technical.items():
        setattr(item, field, value)
    if item.kind == MediaKind.OTHER or item.status != MediaStatus.READY:
        item.kind = guess_kind(item.relative_path, technical)
    item.probe = data
    item.probed_at = timezone.now()
    item.status, item.status_reason = MediaStatus.READY, ""
    item.save(
        update_fields=[
            *technical,
            "kind",
            "probe",
            "probed_at",
            "status",
            "status_reason",
            "updated_at",
        ]
    )
    return {key: technical[key] for key in ("container", "duration", "width", "height", "video_codec", "audio_codec")}


KIND = JobKind("media.probe", run_probe, target_type="media", action="probe", label="Probe", timeout=120)
