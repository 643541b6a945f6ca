"""The one wrapper around ffmpeg and ffprobe. Commands are argument lists, never shell strings."""

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

# Formats ffprobe "recognises" that are not audio or video a library holds.
NON_MEDIA_FORMATS = {
    "tty",
    "image2",
    "png_pipe",
    "jpeg_pipe",
    "bmp_pipe",
    "gif",
    "webp_pipe",
    "svg_pipe",
    "srt",
    "ass",
    "webvtt",
    "subviewer",
    "microdvd",
    "lrc",
    "txt",
    "mpl2",
    "sami",
}


class FFmpegMissing(RuntimeError):
    pass


class ProbeError(Exception):
    """ffprobe could not read the file as media; the message says why, readably."""


@cache
def _which(name: str) -> str | None:
    return shutil.which(name)


def ffprobe_binary() -> str:
    path = settings.FFPROBE_BINARY or _which("ffprobe")
    if not path:
        raise FFmpegMissing("ffprobe is not installed: install ffmpeg or set FFPROBE_BINARY")
    return path


def ffmpeg_binary() -> str:
    path = settings.FFMPEG_BINARY or _which("ffmpeg")
    if path:
        return path
    try:
        import imageio_ffmpeg
    except ImportError:
        raise FFmpegMissing("ffmpeg is not installed: install it or set FFMPEG_BINARY") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def file_url(path: Path) -> str:
    """An input argument ffmpeg cannot mistake for an option or a protocol."""
    # "file:" pins the protocol, so a name like "concat:..." or "-i" is just a name.
    return "file:" + str(Path(path).resolve())


def probe_command(path: Path, *, quick: bool = False) -> list[str]:
    args = [ffprobe_binary(), "-v", "error", "-hide_banner", "-print_format", "json"]
    if quick:
        args += ["-probesize", "5000000", "-analyzeduration", "2000000", "-show_format"]
    else:
        args += ["-show_format", "-show_streams"]
    return [*args, file_url(path)]


def _readable_stderr(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return "ffprobe found no readable media in the file"
    last = lines[-1]
    # ffprobe prefixes with the file URL, which names the path twice in the reason.
    if ": " in last and last.startswith("file:"):
        last = last.split(": ", 1)[1]
    return last[:500]


def probe(path: Path, *, timeout: float | None = None, quick: bool = False) -> dict[str, Any]:
    """Run ffprobe and answer its JSON; ProbeError when the file is not readable media."""
    try:
        done = subprocess.run(
            probe_command(path, quick=quick),
            capture_output=True,
            timeout=timeout or settings.FFPROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"ffprobe did not finish within {timeout or settings.FFPROBE_TIMEOUT:g} s") from None
    if done.returncode != 0:
        raise ProbeError(_readable_stderr(done.stderr))
    try:
        data = json.loads(done.stdout or b"{}")
    except ValueError:
        raise ProbeError("ffprobe printed something other than JSON") from None
    fmt = data.get("format") or {}
    if fmt.get("format_name", "") in NON_MEDIA_FORMATS:
        raise ProbeError(f"not audio or video (ffprobe reads it as {fmt['format_name']!r})")
    if not quick and not media_streams(data):
        raise ProbeError("no audio or video stream in the file")
    return data


def media_streams(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Audio and video streams, leaving out cover art (attached pictures)."""
    return [
        s
        for s in data.get("streams") or []
        if s.get("codec_type") in ("audio", "video") and not (s.get("disposition") or {}).get("attached_pic")
    ]


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def technical_metadata(data: dict[str, Any]) -> dict[str, Any]:
    """The MediaItem technical fields from ffprobe's JSON; pure."""
    fmt = data.get("format") or {}
    streams = media_streams(data)
    video = next((s for s in streams if s["codec_type"] == "video"), None)
    audio = next((s for s in streams if s["codec_type"] == "audio"), None)
    duration = _float(fmt.get("duration"))
    if duration is None:
        duration = max((_float(s.get("duration")) or 0.0 for s in streams), default=0.0) or None
    languages = sorted(
        {
            (s.get("tags") or {}).get("language")
            for s in streams
            if (s.get("tags") or {}).get("language") not in (None, "", "und")
        }
    )
    return {
        "container": (fmt.get("format_name") or "")[:64],
        "duration": round(duration, 3) if duration else None,
        "width": _int(video.get("width")) if video else None,
        "height": _int(video.get("height")) if video else None,
        "bitrate": _int(fmt.get("bit_rate")),
        "video_codec": (video or {}).get("codec_name", "")[:64],
        "audio_codec": (audio or {}).get("codec_name", "")[:64],
        "audio_channels": _int(audio.get("channels")) if audio else None,
        "languages": languages,
    }


def format_tags(data: dict[str, Any]) -> dict[str, str]:
    """Container tags with lower-case keys (title, artist, album, date, genre …)."""
    tags = (data.get("format") or {}).get("tags") or {}
    return {str(k).lower(): str(v) for k, v in tags.items()}
