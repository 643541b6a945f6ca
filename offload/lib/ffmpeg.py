"""The one wrapper around ffmpeg and ffprobe. Commands are argument lists, never shell strings."""

import ctypes
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
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


# The demuxers a library's file may be read with. ffmpeg picks a demuxer by content, and some
# read other files by name: an HLS or DASH playlist, a concat list, an image pattern, MXF's
# external essence. A file named *.mp4 that holds such a list would make ffprobe and ffmpeg
# read anything the worker can, outside the library roots. Only self-contained containers
# and raw streams are allowed; the protocol is pinned to plain files as well.
MEDIA_DEMUXERS = (
    "mov", "matroska", "avi", "asf", "mpeg", "mpegts", "mpegvideo", "flv", "ogg", "mp3", "aac", "flac", "wav",
    "w64", "aiff", "ape", "wv", "tta", "caf", "au", "amr", "ac3", "eac3", "dts", "truehd", "mlp", "h264", "hevc",
    "m4v", "vc1", "nut", "dv", "rm", "ivf", "obu", "av1", "mjpeg", "yuv4mpegpipe", "wtv", "nuv", "smk", "bink",
    "xwma", "dsf", "iff", "voc", "mpc", "mpc8", "shorten", "tak", "gsm", "loas", "latm", "adts", "aptx", "sbc",
)  # fmt: skip
# Still images Offload wrote itself (posters, sprite sheets), read back to check them.
IMAGE_DEMUXERS = ("image2", "jpeg_pipe", "png_pipe", "webp_pipe", "mjpeg")
# Outputs Offload wrote itself: a rendition may be an HLS playlist of its own segments.
OUTPUT_DEMUXERS = (*MEDIA_DEMUXERS, "hls")


def safe_input_options(demuxers: tuple[str, ...] = MEDIA_DEMUXERS) -> list[str]:
    """Input options that keep ffmpeg/ffprobe to plain files read by self-contained demuxers."""
    return ["-protocol_whitelist", "file", "-format_whitelist", ",".join(demuxers)]


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


def probe_command(path: Path, *, quick: bool = False, demuxers: tuple[str, ...] = MEDIA_DEMUXERS) -> list[str]:
    args = [ffprobe_binary(), "-v", "error", "-hide_banner", "-print_format", "json", *safe_input_options(demuxers)]
    if quick:
        args += ["-probesize", "5000000", "-analyzeduration", "2000000", "-show_format"]
    else:
        args += ["-show_format", "-show_streams"]
    return [*args, file_url(path)]


_REFUSED_FORMAT = re.compile(r"\[(?P<demuxer>[\w-]+) @ [^]]*\] Format not on whitelist")


def _readable_stderr(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace")
    refused = _REFUSED_FORMAT.search(text)
    if refused:
        return (
            f"not a media file Offload reads (ffprobe reads it as {refused['demuxer']!r}, which may name other files)"
        )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "ffprobe found no readable media in the file"
    last = lines[-1]
    # ffprobe prefixes with the file URL, which names the path twice in the reason.
    if ": " in last and last.startswith("file:"):
        last = last.split(": ", 1)[1]
    return last[:500]


def probe(path: Path, *, timeout: float | None = None, quick: bool = False, own_output: bool = False) -> dict[str, Any]:
    """Run ffprobe and answer its JSON; ProbeError when the file is not readable media.

    own_output: the file is a rendition Offload just wrote, which may be an HLS playlist.
    """
    try:
        done = subprocess.run(
            probe_command(path, quick=quick, demuxers=OUTPUT_DEMUXERS if own_output else MEDIA_DEMUXERS),
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


def image_size(path: Path, *, timeout: float = 10.0) -> tuple[int, int]:
    """(width, height) of a still image such as a poster or sprite; ProbeError when unreadable."""
    args = [ffprobe_binary(), "-v", "error", "-print_format", "json", *safe_input_options(IMAGE_DEMUXERS)]
    args += ["-show_streams", file_url(path)]
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        stream = (json.loads(done.stdout or b"{}").get("streams") or [{}])[0]
        return int(stream["width"]), int(stream["height"])
    except (subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        raise ProbeError(f"not a readable image: {type(exc).__name__}") from None


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


# --- Running ffmpeg with progress --------------------------------------------

STDERR_TAIL_LINES = 15
WRITE_ERRORS = ("No space left on device", "Error writing trailer", "Input/output error", "Read-only file system")


class FFmpegFailed(Exception):
    """ffmpeg exited with an error; `tail` holds the last lines of its stderr."""

    def __init__(self, message: str, tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.tail = tail or []

    def __str__(self) -> str:
        text = super().__str__()
        return text + ("\n" + "\n".join(self.tail) if self.tail else "")


class FFmpegStopped(Exception):
    """ffmpeg was stopped on request (cancel, or a lock lost)."""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: its own process group (so a cancel kills
    # ffmpeg and anything it spawned), and death with the worker that started it, so a
    # SIGKILLed worker leaves no ffmpeg writing behind.
    os.setsid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def parse_progress_block(lines: list[str]) -> dict[str, str]:
    """key=value lines from `-progress`, as a dict; pure."""
    return dict(line.split("=", 1) for line in lines if "=" in line)


def progress_of(block: dict[str, str], duration: float | None) -> tuple[float | None, float | None]:
    """(percent done, seconds left) from one progress block; pure."""
    out_us = block.get("out_time_us") or block.get("out_time_ms")
    try:
        done = max(0.0, int(out_us) / 1_000_000) if out_us not in (None, "N/A") else None
    except ValueError:
        done = None
    if block.get("progress") == "end":
        return 100.0, 0.0
    if done is None or not duration:
        return None, None
    percent = min(99.9, 100.0 * done / duration)
    speed_text = (block.get("speed") or "").rstrip("x").strip()
    try:
        speed = float(speed_text)
    except ValueError:
        speed = 0.0
    eta = (duration - done) / speed if speed > 0 else None
    return percent, (round(max(0.0, eta), 1) if eta is not None else None)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_ffmpeg(
    args: list[str],
    *,
    duration: float | None,
    timeout: float,
    on_progress: Callable[[float | None, float | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[str]:
    """Run ffmpeg with `-progress` on a pipe; the last lines of its stderr (warnings), or
    FFmpegFailed or FFmpegStopped when it does not finish."""
    _check_inputs(args)
    # -loglevel error: stderr then holds what went wrong, which the job's error quotes.
    command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-nostats"]
    command += ["-progress", "pipe:1", *args]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        deadline = time.monotonic() + timeout
        block: list[str] = []
        try:
            assert proc.stdout is not None
            while True:
                if should_stop is not None and should_stop():
                    _kill_group(proc)
                    raise FFmpegStopped("stopped on request")
                if time.monotonic() > deadline:
                    _kill_group(proc)
                    raise FFmpegFailed(f"ffmpeg did not finish within {timeout:.0f} s", _tail(stderr))
                ready, _, _ = select.select([proc.stdout], [], [], 0.25)
                if not ready:
                    continue
                line = proc.stdout.readline()
                if not line:
                    break
                text = line.decode("utf-8", "replace").strip()
                block.append(text)
                if text.startswith("progress="):
                    if on_progress is not None:
                        on_progress(*progress_of(parse_progress_block(block), duration))
                    block = []
            proc.wait()
        finally:
            if proc.poll() is None:
                _kill_group(proc)
        if proc.returncode != 0:
            raise FFmpegFailed(f"ffmpeg failed (exit {proc.returncode})", _tail(stderr))
        # A full disk can end in "Error writing trailer" and exit status 0: still a failure.
        tail = _tail(stderr)
        if any(marker in line for line in tail for marker in WRITE_ERRORS):
            raise FFmpegFailed("ffmpeg could not write its output", tail)
        return tail


def _check_inputs(args: list[str]) -> None:
    """Every file input must carry the demuxer whitelist (safe_input_options()); a kind that forgot it is a bug."""
    since = 0
    for index, arg in enumerate(args[:-1]):
        if arg == "-i":
            if args[index + 1].startswith("file:") and "-format_whitelist" not in args[since:index]:
                raise ValueError(f"ffmpeg input {args[index + 1]!r} lacks -format_whitelist (safe_input_options())")
            since = index + 2


def _tail(stderr) -> list[str]:
    stderr.seek(0)
    lines = stderr.read().decode("utf-8", "replace").splitlines()
    return [ln for ln in lines if ln.strip()][-STDERR_TAIL_LINES:]
