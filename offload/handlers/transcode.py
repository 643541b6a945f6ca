"""The media.transcode job: one profile's rendition of an item, verified before it is published."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from django.db import transaction

from offload.jobs import Choice, JobCancelled, JobDeferred, JobFailed, JobKind, JobRun, TransientJobError, get_kind
from offload.lib import ffmpeg, outputs
from offload.lib.locks import RedisLock
from offload.lib.paths import InvalidPath, resolve_item_path
from offload.models import Job, MediaItem, Rendition
from offload.profiles import PROFILES, TranscodeProfile, expected_width, target_height, transcode_args

log = logging.getLogger(__name__)

DURATION_TOLERANCE = 1.0
# Kept alive every third of this while the transcode runs; a dead worker's lock frees itself soon.
LOCK_TTL_SECONDS = 15


def run_ffmpeg_step(
    job: Job,
    run: JobRun,
    args: list[str],
    *,
    doing: str,
    duration: float | None,
    on_progress: Callable[[float | None, float | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_stopped: Callable[[], None] | None = None,
) -> None:
    """Run one ffmpeg command for a media job: its stderr goes to the job's log, a failure fails the job.

    Stopped: on_stopped may raise its own error (a lost lock); otherwise the job was cancelled.
    """
    try:
        stderr_tail = ffmpeg.run_ffmpeg(
            args,
            duration=duration,
            timeout=get_kind(job.kind).timeout_for(job),
            on_progress=on_progress,
            should_stop=should_stop or run.should_stop,
        )
    except ffmpeg.FFmpegStopped:
        stderr_tail = None
    except ffmpeg.FFmpegFailed as exc:
        run.record_log(exc.tail)
        raise JobFailed(f"ffmpeg could not {doing}:\n{exc}") from None
    if stderr_tail is None:
        # Outside the except block: the job's error is the stop's reason, not a chain of two.
        if on_stopped is not None:
            on_stopped()
        raise JobCancelled()
    if stderr_tail:
        run.record_log(stderr_tail)


def load_source(item: MediaItem) -> tuple[Path, dict[str, Any]]:
    """The item's file and a fresh ffprobe of it; JobFailed with the reason when unusable."""
    try:
        source = resolve_item_path(item.library.root, item.relative_path)
    except InvalidPath as exc:
        raise JobFailed(str(exc)) from None
    if not source.is_file():
        raise JobFailed(f"The source file {item.relative_path} no longer exists.")
    try:
        return source, ffmpeg.probe(source)
    except ffmpeg.ProbeError as exc:
        raise JobFailed(f"The source is not readable media: {exc}") from None


def verify(output: Path, profile: TranscodeProfile, source: dict[str, Any]) -> dict[str, Any]:
    """Probe the output and compare it with what the profile promised; JobFailed otherwise."""
    try:
        got = ffmpeg.technical_metadata(ffmpeg.probe(output, own_output=True))
    except ffmpeg.ProbeError as exc:
        raise JobFailed(f"The output could not be verified: {exc}") from None
    problems = []
    if profile.needs_video:
        height = target_height(profile, source["height"])
        width = expected_width(source["width"], source["height"], height)
        if got["video_codec"] != profile.video_codec:
            problems.append(f"video codec {got['video_codec'] or 'none'}, expected {profile.video_codec}")
        if got["height"] != height or abs((got["width"] or 0) - width) > 2:
            problems.append(f"size {got['width']}x{got['height']}, expected {width}x{height}")
    elif got["video_codec"]:
        problems.append("a video stream in an audio rendition")
    if source["audio_codec"] and got["audio_codec"] != profile.audio_codec:
        problems.append(f"audio codec {got['audio_codec'] or 'none'}, expected {profile.audio_codec}")
    if source["duration"] and abs((got["duration"] or 0) - source["duration"]) > DURATION_TOLERANCE:
        problems.append(f"duration {got['duration']} s, source {source['duration']} s")
    if problems:
        raise JobFailed("The output failed verification: " + "; ".join(problems) + ".")
    return got


class RenditionPaths(NamedTuple):
    """Where a rendition is built (under the attempt's partial folder) and where it is published."""

    built: Path  # the file, or the folder of an HLS rendition, moved into place whole
    output: Path  # what ffmpeg writes: the file, or the folder's playlist
    dest: str  # built's place under MEDIA_ROOT
    published_name: str  # output's place under MEDIA_ROOT, as the Rendition row stores it


def rendition_paths(partial: Path, item_id: int, profile: TranscodeProfile) -> RenditionPaths:
    """The paths of one rendition of an item; pure."""
    if profile.kind == "hls":
        built = partial / profile.name
        dest = f"renditions/{item_id}/{profile.name}"
        return RenditionPaths(built, built / "index.m3u8", dest, f"{dest}/index.m3u8")
    built = partial / f"{profile.name}.{profile.extension}"
    dest = f"renditions/{item_id}/{profile.name}.{profile.extension}"
    return RenditionPaths(built, built, dest, dest)


def encode(
    job: Job, run: JobRun, lock: RedisLock, profile: TranscodeProfile, source: Path, technical: dict, output: Path
) -> None:
    """Run ffmpeg for the rendition, reporting progress; stops on a cancel or when the lock is lost."""
    # The source is a library file: only self-contained demuxers may read it.
    args = ffmpeg.safe_input_options() + transcode_args(
        profile,
        ffmpeg.file_url(source),
        str(output),
        source_height=technical["height"],
        has_audio=bool(technical["audio_codec"]),
    )

    def report(percent: float | None, eta: float | None) -> None:
        run.progress(percent, partial_result={"profile": profile.name, "eta_seconds": eta})

    def stopped() -> None:
        if lock.lost.is_set():
            raise TransientJobError("The transcode lock was lost; the job will run again.")

    run_ffmpeg_step(
        job,
        run,
        args,
        doing="transcode the file",
        duration=technical["duration"],
        on_progress=report,
        should_stop=lambda: run.should_stop() or lock.lost.is_set(),
        on_stopped=stopped,
    )


def save(
    item: MediaItem, profile: TranscodeProfile, paths: RenditionPaths, got: dict[str, Any]
) -> tuple[Rendition, int]:
    """Publish the verified rendition and write its row in one step: (the row, its size in bytes)."""
    built = paths.built
    size = sum(p.stat().st_size for p in built.rglob("*")) if built.is_dir() else built.stat().st_size
    with transaction.atomic():
        outputs.publish(built, paths.dest)
        rendition, _ = Rendition.objects.update_or_create(
            item=item,
            profile=profile.name,
            defaults={
                "path": paths.published_name,
                "size": size,
                "duration": got["duration"],
                "width": got["width"],
                "height": got["height"],
                "bitrate": got["bitrate"],
                "video_codec": got["video_codec"],
                "audio_codec": got["audio_codec"],
            },
        )
    return rendition, size


def run_transcode(job: Job, item: MediaItem, run: JobRun) -> dict[str, Any]:
    profile = PROFILES.get(job.params.get("profile", ""))
    if profile is None:
        raise JobFailed(f"Unknown transcode profile {job.params.get('profile')!r}.")
    source, data = load_source(item)
    technical = ffmpeg.technical_metadata(data)
    if profile.needs_video and not technical["video_codec"]:
        raise JobFailed(f"The source has no video stream; {profile.name} needs one (try audio-aac-128k).")
    if not technical["audio_codec"] and not profile.needs_video:
        raise JobFailed("The source has no audio stream to encode.")

    lock = RedisLock(f"transcode:{item.pk}:{profile.name}", ttl_seconds=LOCK_TTL_SECONDS)
    if not lock.acquire():
        raise JobDeferred(f"Another transcode of item {item.pk} to {profile.name} is running.", LOCK_TTL_SECONDS / 3)
    lock.keep_alive()
    try:
        paths = rendition_paths(outputs.fresh_partial_dir(job), item.pk, profile)
        if paths.built != paths.output:
            paths.built.mkdir()
        encode(job, run, lock, profile, source, technical, paths.output)
        got = verify(paths.output, profile, technical)
        rendition, size = save(item, profile, paths, got)
    except OSError as exc:
        raise JobFailed(f"Could not write the rendition: {exc.strerror or exc}.") from None
    finally:
        outputs.remove_partial_dir(job)
        lock.release()
    return {
        "profile": profile.name,
        "rendition": rendition.pk,
        "path": paths.published_name,
        "url": outputs.url_for(paths.published_name),
        "size": size,
        "width": got["width"],
        "height": got["height"],
        "duration": got["duration"],
        "eta_seconds": 0,
    }


def refuse_profiles_that_do_not_fit(item: MediaItem, params: dict[str, Any]) -> None:
    """At request time: a video profile for an item probed as audio-only is refused (400) with the reason.

    An item not probed yet is let through; the handler checks the source again when it runs.
    """
    profile = PROFILES.get(params.get("profile", ""))
    if profile is None or item.probed_at is None:
        return
    if profile.needs_video and not item.video_codec:
        raise ValueError(f"{item} has no video stream; {profile.name} needs one (try audio-aac-128k).")
    if not profile.needs_video and not item.audio_codec:
        raise ValueError(f"{item} has no audio stream; {profile.name} encodes audio only.")


KIND = JobKind(
    "media.transcode",
    run_transcode,
    target_type="media",
    action="transcode",
    label="Transcode…",
    params=(
        Choice(
            "profile",
            lambda: list(PROFILES),
            help_text="Never upscales: a source smaller than the profile keeps its own height.",
            describe=lambda name: f"{name} — {PROFILES[name].description}",
        ),
    ),
    validate=refuse_profiles_that_do_not_fit,
    timeout=300,
    lane="media",
    # Real footage transcodes at 1.5-2x realtime on two cores; allow well past that.
    timeout_per_media_second=3.0,
)
