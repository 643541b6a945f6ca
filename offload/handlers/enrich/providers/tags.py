"""The embedded-tags provider: ffprobe's format and stream tags (title, artist, album, date, genre, track).

MediaItem has no album or track-number fields. For music, the album is the collection a
track belongs to and the track number its place in it, so they fill series_title and
episode, as a series and an episode number do for video.
"""

import re
from typing import Any

from offload.handlers.enrich.providers import Context, Proposal, ProviderError
from offload.lib import ffmpeg
from offload.models import MediaKind

YEAR = re.compile(r"\b(1[89]\d\d|2[01]\d\d)\b")
LEADING_NUMBER = re.compile(r"^\s*(\d{1,4})")
# Keys that carry descriptive metadata; encoder, handler_name and the like do not.
KNOWN_KEYS = (
    "title",
    "artist",
    "album_artist",
    "album",
    "date",
    "date_released",
    "year",
    "genre",
    "track",
    "description",
    "synopsis",
    "show",
    "season_number",
    "episode_sort",
)


def provide(context: Context) -> Proposal:
    data = context.item.probe
    if not data:
        if context.path is None or not context.path.is_file():
            raise ProviderError("The item has not been probed and its file cannot be read.")
        try:
            data = ffmpeg.probe(context.path)
        except ffmpeg.ProbeError as exc:
            raise ProviderError(f"ffprobe could not read the file's tags: {exc}") from None
    tags = embedded_tags(data)
    return Proposal(fields=fields_from_tags(tags, context.kind), inputs=tags, status="ok" if tags else "no tags")


def embedded_tags(data: dict[str, Any]) -> dict[str, str]:
    """The descriptive tags, lower-cased: the container's, then an audio-only file's stream tags."""
    tags = {k: v for k, v in ffmpeg.format_tags(data).items() if k in KNOWN_KEYS and v.strip()}
    streams = ffmpeg.media_streams(data)
    if streams and not any(s.get("codec_type") == "video" for s in streams):
        # Ogg and Opus keep their comments on the audio stream. In a video file, stream
        # titles name the tracks ("Stereo", "Commentary"), not the work, so they are skipped.
        for key, value in (streams[0].get("tags") or {}).items():
            key = str(key).lower()
            if key in KNOWN_KEYS and str(value).strip():
                tags.setdefault(key, str(value))
    return dict(sorted(tags.items()))


def fields_from_tags(tags: dict[str, str], kind: str) -> dict[str, Any]:
    """Descriptive fields from embedded tags; pure."""
    fields: dict[str, Any] = {"title": tags.get("title")}
    for key in ("date", "date_released", "year"):
        match = YEAR.search(tags.get(key, ""))
        if match:
            fields["year"] = int(match.group(1))
            break
    if tags.get("genre"):
        fields["genres"] = _split(tags["genre"], r"[;/,]")
    people = [*_split(tags.get("artist", ""), ";"), *_split(tags.get("album_artist", ""), ";")]
    if people:
        fields["people"] = people
    overview = tags.get("synopsis") or tags.get("description")
    if overview:
        fields["overview"] = overview
    if kind == MediaKind.TRACK:
        fields["series_title"] = tags.get("album")
        fields["episode"] = _number(tags.get("track"))
    elif tags.get("show"):
        fields["series_title"] = tags["show"]
        fields["season"] = _number(tags.get("season_number"))
        fields["episode"] = _number(tags.get("episode_sort"))
    return {k: v for k, v in fields.items() if v not in (None, "", [])}


def _split(value: str, separators: str) -> list[str]:
    return [part.strip() for part in re.split(separators, value) if part.strip()]


def _number(value: str | None) -> int | None:
    match = LEADING_NUMBER.match(value or "")
    return int(match.group(1)) if match else None
