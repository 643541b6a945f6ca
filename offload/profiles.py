"""Transcode profiles and the ffmpeg command lines they make. Pure: no I/O here."""

from dataclasses import asdict, dataclass
from typing import Any

# Never upscale: the output height is the profile's, or the source's when that is
# smaller, rounded down to an even number (H.264 with 4:2:0 needs even dimensions).
UPSCALE_RULE = (
    "Never upscale: the output height is the profile's height or the source's, whichever is "
    "smaller, rounded down to even; the width keeps the source's aspect ratio."
)


@dataclass(frozen=True)
class TranscodeProfile:
    name: str
    description: str
    kind: str  # "video", "audio" or "hls"
    container: str  # the ffmpeg muxer
    extension: str
    height: int | None = None
    video_codec: str = "h264"
    crf: int = 22
    preset: str = "veryfast"
    maxrate: str = ""
    audio_codec: str = "aac"
    audio_bitrate: str = "128k"
    audio_channels: int = 2
    segment_seconds: int = 4

    @property
    def needs_video(self) -> bool:
        return self.kind in ("video", "hls")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["upscale_rule"] = UPSCALE_RULE
        return data


PROFILES: dict[str, TranscodeProfile] = {
    p.name: p
    for p in (
        TranscodeProfile(
            "h264-1080p",
            "MP4, H.264 1080p + AAC",
            "video",
            "mp4",
            "mp4",
            1080,
            crf=21,
            maxrate="8M",
            audio_bitrate="160k",
        ),
        TranscodeProfile("h264-720p", "MP4, H.264 720p + AAC", "video", "mp4", "mp4", 720, crf=22, maxrate="4M"),
        TranscodeProfile(
            "h264-480p", "MP4, H.264 480p + AAC", "video", "mp4", "mp4", 480, crf=23, maxrate="2M", audio_bitrate="96k"
        ),
        TranscodeProfile("audio-aac-128k", "M4A, AAC 128 kb/s", "audio", "ipod", "m4a", video_codec=""),
        TranscodeProfile(
            "hls-720p", "HLS playlist, H.264 720p + AAC in 4 s segments", "hls", "hls", "m3u8", 720, maxrate="4M"
        ),
    )
}


def target_height(profile: TranscodeProfile, source_height: int) -> int:
    """The output height under the never-upscale rule."""
    height = min(profile.height or source_height, source_height)
    return max(2, height - height % 2)


def expected_width(source_width: int, source_height: int, height: int) -> int:
    """The width ffmpeg's `scale=-2:H` gives: av_rescale(H, w, h*2) * 2, rounding half up."""
    return max(2, 2 * int(height * source_width / (source_height * 2) + 0.5))


def transcode_args(
    profile: TranscodeProfile,
    source_url: str,
    output_path: str,
    *,
    source_height: int | None,
    has_audio: bool,
) -> list[str]:
    """The ffmpeg arguments (without the binary and the progress options) for one profile."""
    args = ["-i", source_url]
    if profile.needs_video:
        height = target_height(profile, source_height or profile.height or 2)
        args += ["-map", "0:v:0"]
        if has_audio:
            args += ["-map", "0:a:0"]
        args += [
            "-c:v",
            "libx264",
            "-preset",
            profile.preset,
            "-crf",
            str(profile.crf),
            "-vf",
            f"scale=-2:{height}",
            "-pix_fmt",
            "yuv420p",
        ]
        if profile.maxrate:
            args += ["-maxrate", profile.maxrate, "-bufsize", _double(profile.maxrate)]
    else:
        args += ["-map", "0:a:0", "-vn"]
    if has_audio:
        args += ["-c:a", "aac", "-b:a", profile.audio_bitrate, "-ac", str(profile.audio_channels)]
    if profile.kind == "hls":
        segment_pattern = output_path.rsplit("/", 1)[0] + "/segment_%05d.ts"
        # Keyframes on segment boundaries, so every segment starts cleanly.
        args += ["-force_key_frames", f"expr:gte(t,n_forced*{profile.segment_seconds})"]
        args += [
            "-f",
            "hls",
            "-hls_time",
            str(profile.segment_seconds),
            "-hls_playlist_type",
            "vod",
            "-hls_segment_filename",
            segment_pattern,
        ]
    else:
        args += ["-movflags", "+faststart", "-f", profile.container]
    # "file:" pins the protocol, so an output name cannot be taken for anything else.
    return [*args, "file:" + output_path]


def _double(rate: str) -> str:
    number, unit = rate[:-1], rate[-1]
    return f"{int(number) * 2}{unit}"
