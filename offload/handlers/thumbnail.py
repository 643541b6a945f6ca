"""The media.thumbnail job: a poster frame, and for video a sprite sheet with a WebVTT index."""

import math
from typing import Any

from django.conf import settings

from offload.handlers.transcode import load_source, run_ffmpeg_step
from offload.jobs import JobFailed, JobKind, JobRun
from offload.lib import ffmpeg, outputs
from offload.models import Job, MediaItem

SPRITE_COLUMNS = 10
SPRITE_TILE_WIDTH = 160
POSTER_HEIGHT = 360
# How many frames the `thumbnail` filter weighs to pick the most typical one: it
# passes over black and flash frames around the chosen moment.
POSTER_CANDIDATE_FRAMES = 30


def poster_args(source_url: str, output: str, at_seconds: float) -> list[str]:
    """Arguments for one poster frame near `at_seconds`; pure."""
    return [
        "-ss", f"{at_seconds:.3f}", "-i", source_url, "-map", "0:v:0",
        "-vf", f"thumbnail={POSTER_CANDIDATE_FRAMES},scale=-2:{POSTER_HEIGHT}",
        "-frames:v", "1", "-update", "1", "-q:v", "3", "-f", "image2", "file:" + output,
    ]  # fmt: skip


def cover_art_args(source_url: str, output: str) -> list[str]:
    """Arguments that copy an audio file's attached picture out as the poster; pure."""
    return ["-i", source_url, "-map", "0:v:0", "-frames:v", "1", "-update", "1", "-f", "image2", "file:" + output]


def sprite_plan(duration: float, interval: float, max_tiles: int) -> tuple[float, int, int]:
    """(interval, tiles, rows) for a sprite: the interval grows only past max_tiles; pure."""
    interval = max(interval, duration / max_tiles) if duration else interval
    tiles = max(1, math.ceil(duration / interval)) if duration else 1
    return interval, tiles, math.ceil(tiles / SPRITE_COLUMNS)


def sprite_args(source_url: str, output: str, interval: float, rows: int) -> list[str]:
    """Arguments for one sprite sheet: the first frame, then one every `interval` seconds, tiled; pure."""
    # `select` rather than `fps`: fps=1/N yields no frame at all for a clip shorter than N.
    pick = f"select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,{interval:g})'"
    return [
        "-i", source_url, "-map", "0:v:0",
        "-vf", f"{pick},scale={SPRITE_TILE_WIDTH}:-2,tile={SPRITE_COLUMNS}x{rows}", "-fps_mode", "vfr",
        "-frames:v", "1", "-update", "1", "-q:v", "5", "-f", "image2", "file:" + output,
    ]  # fmt: skip


def sprite_vtt(sprite_url: str, duration: float, interval: float, tiles: int, tile_height: int) -> str:
    """A WebVTT index mapping each interval to its tile (`#xywh=`), for scrubbing previews; pure."""

    def stamp(seconds: float) -> str:
        ms = round(seconds * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    cues = ["WEBVTT", ""]
    for n in range(tiles):
        start, end = n * interval, min((n + 1) * interval, duration or (n + 1) * interval)
        x, y = (n % SPRITE_COLUMNS) * SPRITE_TILE_WIDTH, (n // SPRITE_COLUMNS) * tile_height
        cues += [f"{stamp(start)} --> {stamp(end)}", f"{sprite_url}#xywh={x},{y},{SPRITE_TILE_WIDTH},{tile_height}", ""]
    return "\n".join(cues)


def _run(args: list[str], job: Job, run: JobRun, duration: float | None) -> None:
    # The source is a library file: only self-contained demuxers may read it.
    run_ffmpeg_step(job, run, ffmpeg.safe_input_options() + args, doing="make the thumbnails", duration=duration)


def run_thumbnail(job: Job, item: MediaItem, run: JobRun) -> dict[str, Any]:
    source, data = load_source(item)
    technical = ffmpeg.technical_metadata(data)
    source_url = ffmpeg.file_url(source)
    duration = technical["duration"] or 0.0
    folder = f"thumbnails/{item.pk}"
    result: dict[str, Any] = {"poster": None, "sprite": None, "sprite_index": None}
    try:
        partial = outputs.fresh_partial_dir(job)
        built = partial / "thumbnails"
        built.mkdir()
        poster = built / "poster.jpg"
        run.progress(0, force=True)
        if technical["video_codec"] and technical["width"]:
            _run(poster_args(source_url, str(poster), at_seconds=duration * 0.1), job, run, None)
            run.progress(30)
            interval, tiles, rows = sprite_plan(
                duration, settings.OFFLOAD_SPRITE_INTERVAL, settings.OFFLOAD_SPRITE_MAX_TILES
            )
            sprite = built / "sprite.jpg"
            _run(sprite_args(source_url, str(sprite), interval, rows), job, run, duration)
            tile_height = ffmpeg.image_size(sprite)[1] // rows
            (built / "sprite.vtt").write_text(sprite_vtt("sprite.jpg", duration, interval, tiles, tile_height))
            result.update(tiles=tiles, interval=interval, tile_width=SPRITE_TILE_WIDTH, tile_height=tile_height)
        else:
            if any(s.get("codec_type") == "video" for s in data.get("streams") or []):
                _run(cover_art_args(source_url, str(poster)), job, run, None)
        outputs.publish(built, folder)
    except ffmpeg.ProbeError as exc:
        raise JobFailed(f"The sprite sheet could not be read back: {exc}") from None
    except OSError as exc:
        raise JobFailed(f"Could not write the thumbnails: {exc.strerror or exc}.") from None
    finally:
        outputs.remove_partial_dir(job)

    published = outputs.media_root() / folder
    item.poster = f"{folder}/poster.jpg" if (published / "poster.jpg").exists() else ""
    item.sprite = f"{folder}/sprite.jpg" if (published / "sprite.jpg").exists() else ""
    item.sprite_index = f"{folder}/sprite.vtt" if (published / "sprite.vtt").exists() else ""
    item.save(update_fields=["poster", "sprite", "sprite_index", "updated_at"])
    for name in ("poster", "sprite", "sprite_index"):
        path = getattr(item, name)
        result[name] = outputs.url_for(path) if path else None
    return result


KIND = JobKind(
    "media.thumbnail",
    run_thumbnail,
    target_type="media",
    action="thumbnail",
    label="Make thumbnails",
    timeout=120,
    timeout_per_media_second=0.5,
)
