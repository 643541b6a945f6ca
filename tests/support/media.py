"""Small real media files, made with ffmpeg's lavfi sources."""

import subprocess
from pathlib import Path

from offload.lib.ffmpeg import ffmpeg_binary


def make_video(path: Path, *, seconds: float = 1.0, size: str = "160x90", audio: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        ffmpeg_binary(),
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate=10:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-b:a", "64k"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4", str(path)]
    subprocess.run(args, check=True, capture_output=True)
    return path


def make_audio(path: Path, *, seconds: float = 1.0, tags: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=220:duration={seconds}"]
    for key, value in (tags or {}).items():
        args += ["-metadata", f"{key}={value}"]
    args += ["-c:a", "aac", "-b:a", "64k", "-f", "ipod", str(path)]
    subprocess.run(args, check=True, capture_output=True)
    return path


def make_corrupt(path: Path, source: Path) -> Path:
    """A media-looking file whose data is cut short and scrambled."""
    data = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(reversed(data[200 : len(data) // 3])))
    return path
