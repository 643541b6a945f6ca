"""Demo data for a fresh install: a few short generated media files and a library that holds them."""

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from offload import actions
from offload.lib import ffmpeg
from offload.lib.paths import resolve_library_path
from offload.models import Job, Library

log = logging.getLogger(__name__)

DEMO_FOLDER_NAME = "demo"
DEMO_LIBRARY_NAME = "Demo library"
DURATION_SECONDS = 4
VIDEO_SIZE = "320x180"
VIDEO_RATE = 25
GENERATE_TIMEOUT = 120.0

# The muxer is named rather than guessed, because ffmpeg writes to a temporary name.
MUXERS = {".mp4": "mp4", ".mkv": "matroska", ".m4a": "ipod"}


class DemoError(RuntimeError):
    """A demo file could not be generated; the message says which and why."""


@dataclass(frozen=True)
class DemoFile:
    """One generated file: where it goes below the demo folder and what it holds."""

    relative_path: str
    # A lavfi video source (testsrc2, smptebars …); None for an audio-only file.
    video_source: str | None
    tone_hz: int
    metadata: tuple[tuple[str, str], ...] = ()
    audio_language: str = ""


DEMO_FILES: tuple[DemoFile, ...] = (
    DemoFile(
        "Movies/Big Test Pattern (2009)/Big Test Pattern (2009).mp4",
        video_source="testsrc2",
        tone_hz=440,
        metadata=(("title", "Big Test Pattern"), ("date", "2009"), ("genre", "Documentary")),
    ),
    DemoFile(
        "Movies/The Colour Bars (2014)/The Colour Bars (2014).mkv",
        video_source="smptebars",
        tone_hz=660,
        metadata=(("title", "The Colour Bars"), ("date", "2014"), ("genre", "Drama")),
        audio_language="eng",
    ),
    DemoFile(
        "TV/Sample Show/Season 01/Sample Show - S01E01 - Pilot.mp4",
        video_source="testsrc",
        tone_hz=523,
        metadata=(("title", "Pilot"), ("show", "Sample Show"), ("season_number", "1"), ("episode_sort", "1")),
    ),
    DemoFile(
        "TV/Sample Show/Season 01/Sample Show - S01E02 - Second Light.mp4",
        video_source="rgbtestsrc",
        tone_hz=587,
        metadata=(("title", "Second Light"), ("show", "Sample Show"), ("season_number", "1"), ("episode_sort", "2")),
    ),
    DemoFile(
        "Music/Demo Artist/Demo Album/01 - Demo Song.m4a",
        video_source=None,
        tone_hz=330,
        metadata=(
            ("title", "Demo Song"),
            ("artist", "Demo Artist"),
            ("album_artist", "Demo Artist"),
            ("album", "Demo Album"),
            ("genre", "Electronic"),
            ("date", "2020"),
            ("track", "1"),
        ),
    ),
)


def partial_path(target: Path) -> Path:
    """Where ffmpeg writes before the rename: hidden, so a scan running meanwhile skips it."""
    return target.with_name(f".{target.name}.part")


def build_command(binary: str, spec: DemoFile, output: Path) -> list[str]:
    """The ffmpeg argument list that generates one demo file at output; pure."""
    suffix = Path(spec.relative_path).suffix.lower()
    try:
        muxer = MUXERS[suffix]
    except KeyError:
        raise ValueError(f"No muxer known for {suffix!r} ({spec.relative_path})") from None
    args = [binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if spec.video_source:
        args += [
            "-f",
            "lavfi",
            "-i",
            f"{spec.video_source}=size={VIDEO_SIZE}:rate={VIDEO_RATE}:duration={DURATION_SECONDS}",
        ]
    args += ["-f", "lavfi", "-i", f"sine=frequency={spec.tone_hz}:sample_rate=48000:duration={DURATION_SECONDS}"]
    if spec.video_source:
        args += ["-map", "0:v:0", "-map", "1:a:0"]
        args += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    else:
        args += ["-map", "0:a:0"]
    args += ["-c:a", "aac", "-b:a", "96k", "-ac", "2", "-shortest"]
    for key, value in spec.metadata:
        args += ["-metadata", f"{key}={value}"]
    if spec.audio_language:
        args += ["-metadata:s:a:0", f"language={spec.audio_language}"]
    if muxer in ("mp4", "ipod"):
        args += ["-movflags", "+faststart"]
    # "file:" keeps a name beginning with "-" or "proto:" from being read as anything else.
    return [*args, "-f", muxer, ffmpeg.file_url(output)]


def _failure_reason(done: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    if lines:
        return lines[-1][:500]
    return f"it exited with code {done.returncode} and no message"


def generate(binary: str, spec: DemoFile, target: Path) -> None:
    """Write one demo file at target, atomically: it appears complete or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    try:
        done = subprocess.run(
            build_command(binary, spec, partial),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=GENERATE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        raise DemoError(f"ffmpeg did not finish {spec.relative_path} within {GENERATE_TIMEOUT:g} s") from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DemoError(f"ffmpeg could not be started ({binary}): {exc}") from exc
    if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        raise DemoError(f"ffmpeg could not make {spec.relative_path}: {_failure_reason(done)}")
    os.replace(partial, target)


def write_demo_files(folder: Path, *, binary: str | None = None) -> list[Path]:
    """Generate the demo files missing below folder; answer the paths it created."""
    binary = binary or ffmpeg.ffmpeg_binary()
    created = []
    for spec in DEMO_FILES:
        target = folder / spec.relative_path
        if target.is_file() and target.stat().st_size > 0:
            continue
        generate(binary, spec, target)
        log.info("generated demo file %s", target)
        created.append(target)
    return created


def demo_folder() -> Path:
    """The demo folder: "demo" below the first library root."""
    return Path(settings.OFFLOAD_LIBRARY_ROOTS[0]) / DEMO_FOLDER_NAME


@dataclass(frozen=True)
class SeedResult:
    """What seed_demo found, made and queued."""

    folder: Path
    generated: list[Path]
    library: Library
    library_created: bool
    scan: Job
    scan_created: bool


def seed_demo(owner) -> SeedResult:
    """Make sure the demo files and the demo library exist, and queue a scan of it."""
    folder = demo_folder()
    generated = write_demo_files(folder)
    path = resolve_library_path(str(folder))
    # Found by its folder, so a demo library the operator renamed is kept, not doubled.
    library = Library.objects.filter(path=str(path)).order_by("id").first()
    library_created = library is None
    if library is None:
        library = actions.create_library(owner, DEMO_LIBRARY_NAME, str(path))
    scan, scan_created = actions.request_job(owner, "library.scan", library)
    return SeedResult(folder, generated, library, library_created, scan, scan_created)
