"""A job's params and result as a person reads them: links, times, sizes and durations with units."""

from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join

from offload.admin.formatting import bitrate, duration, size, when
from offload.models import Library, MediaItem

LABELS = {"eta_seconds": "ETA", "url": "URL", "path": "path"}
TARGET_PAGES = {"media": "admin:offload_mediaitem_change", "library": "admin:offload_library_change"}


def target_link(target_type: str, target_id: int, names: dict | None = None) -> str:
    """The target by name ("Long Feature" in "Films") linking to its page; "—" for a job without a target.

    names: what target_names() read for a page of jobs; read here for this one target when not given.
    """
    page = TARGET_PAGES.get(target_type)
    if page is None:
        return "—"
    if names is None:
        names = target_names([(target_type, target_id)])
    label, library = names.get((target_type, target_id)) or (f"{target_type} {target_id} (gone)", "")
    return format_html(
        '<a href="{}" title="{} {}">{}</a>{}',
        reverse(page, args=[target_id]),
        target_type,
        target_id,
        label,
        format_html(' <span class="offload-quiet">in {}</span>', library) if library else "",
    )


def target_names(targets) -> dict[tuple[str, int], tuple[str, str]]:
    """(type, id) → (title or file name, library name) for media and library targets: two queries at most."""
    wanted: dict[str, set[int]] = {"media": set(), "library": set()}
    for target_type, target_id in targets:
        if target_type in wanted:
            wanted[target_type].add(target_id)
    names: dict[tuple[str, int], tuple[str, str]] = {}
    if wanted["media"]:
        rows = MediaItem.objects.filter(pk__in=wanted["media"]).values_list(
            "pk", "title", "relative_path", "library__name"
        )
        for pk, title, path, library in rows:
            names[("media", pk)] = (title or PurePosixPath(path).name, library)
    if wanted["library"]:
        for pk, name in Library.objects.filter(pk__in=wanted["library"]).values_list("pk", "name"):
            names[("library", pk)] = (name, "")
    return names


def name_targets(jobs) -> list:
    """The jobs, each given `target_html`: its target by name, read for all of them at once."""
    jobs = list(jobs)
    names = target_names((job.target_type, job.target_id) for job in jobs)
    for job in jobs:
        job.target_html = target_link(job.target_type, job.target_id, names)
    return jobs


def value(key: str, raw: Any, measured_at: datetime | None = None) -> str:
    """One value, shown by what its key says it is."""
    if raw is None or raw == "":
        return "—"
    if isinstance(raw, dict):
        return mapping(raw, measured_at=measured_at)
    if isinstance(raw, list):
        return format_html_join(", ", "{}", ((value(key, item, measured_at),) for item in raw)) if raw else "—"
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if isinstance(raw, str) and (key == "url" or key.endswith("_url") or raw.startswith(("/media/", "http"))):
        return format_html('<a href="{}">{}</a>', raw, raw)
    if isinstance(raw, (int, float)):
        if key == "eta_seconds":
            if raw <= 0:
                return "done"
            if measured_at is None:
                return duration(raw)
            return format_html("{} (in {})", when(measured_at + timedelta(seconds=raw)), duration(raw))
        if key in ("size", "bytes") or key.endswith(("_size", "_bytes")):
            return size(int(raw))
        if key in ("duration", "seconds") or key.endswith(("_seconds", "_duration")):
            return duration(float(raw))
        if key == "bitrate" or key.endswith("_bitrate"):
            return bitrate(int(raw))
    return str(raw)


def mapping(data: Any, measured_at: datetime | None = None) -> str:
    """A JSON object as a definition list; anything else as its value."""
    if not isinstance(data, dict):
        return value("", data, measured_at)
    if not data:
        return "—"
    return format_html(
        '<dl class="offload-readable">{}</dl>',
        format_html_join(
            "",
            "<dt>{}</dt><dd>{}</dd>",
            ((LABELS.get(key, key.replace("_", " ")), value(key, raw, measured_at)) for key, raw in data.items()),
        ),
    )


# ffprobe's format names (a muxer's aliases, comma-joined) and codec names, as people call them.
CONTAINERS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4 / QuickTime",
    "matroska,webm": "Matroska / WebM",
    "avi": "AVI",
    "mpegts": "MPEG transport stream",
    "mpeg": "MPEG program stream",
    "mp3": "MP3",
    "flac": "FLAC",
    "ogg": "Ogg",
    "wav": "WAV",
    "aac": "AAC (ADTS)",
    "asf": "Windows Media (ASF)",
    "flv": "Flash video",
    "hls": "HLS playlist",
    "image2": "image",
    "png_pipe": "PNG image",
    "jpeg_pipe": "JPEG image",
}
CODECS = {
    "h264": "H.264 / AVC",
    "hevc": "H.265 / HEVC",
    "av1": "AV1",
    "vp8": "VP8",
    "vp9": "VP9",
    "mpeg4": "MPEG-4 Part 2",
    "mpeg2video": "MPEG-2 video",
    "mjpeg": "Motion JPEG",
    "png": "PNG",
    "aac": "AAC",
    "mp3": "MP3",
    "opus": "Opus",
    "vorbis": "Vorbis",
    "flac": "FLAC",
    "alac": "Apple Lossless",
    "ac3": "Dolby Digital (AC-3)",
    "eac3": "Dolby Digital Plus (E-AC-3)",
    "dts": "DTS",
    "truehd": "Dolby TrueHD",
    "pcm_s16le": "PCM, 16-bit",
    "pcm_s24le": "PCM, 24-bit",
}


def container_name(name: str) -> str:
    """ "mov,mp4,m4a,3gp,3g2,mj2" → "MP4 / QuickTime"; an unknown name as it is."""
    if not name:
        return "—"
    return CONTAINERS.get(name, name.split(",")[0].upper())


def codec_name(name: str) -> str:
    """ "h264" → "H.264 / AVC"; an unknown codec as it is."""
    if not name:
        return "—"
    return CODECS.get(name, name)
