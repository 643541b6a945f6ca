"""Search documents: built from MediaItem rows by pure functions, loaded in batches."""

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from offload.models import MediaItem, Rendition

# What a document needs from a row; the raw probe output stays in the database.
DOCUMENT_FIELDS = (
    "id",
    "library_id",
    "relative_path",
    "kind",
    "title",
    "original_title",
    "series_title",
    "overview",
    "year",
    "genres",
    "people",
    "tags",
    "duration",
    "width",
    "height",
    "created_at",
    "updated_at",
)

# (the smaller side of the frame at least, label), largest first
RESOLUTIONS = ((2160, "2160p"), (1440, "1440p"), (1080, "1080p"), (720, "720p"), (576, "576p"), (480, "480p"))


def resolution_label(width: int | None, height: int | None) -> str | None:
    """A facet-friendly name for a frame size: 1920×800 is "1080p" (by its width), 640×360 "SD"."""
    if not width or not height:
        return None
    # Widescreen films are letterboxed: judge a frame by what a 16:9 frame of its width would be.
    lines = max(height, round(width * 9 / 16))
    for minimum, label in RESOLUTIONS:
        if lines >= minimum:
            return label
    return "SD"


def names(values: Any) -> list[str]:
    """A JSON list of names, as strings; entries may be plain strings or {"name": ...} objects."""
    if not isinstance(values, list):
        return []
    out = []
    for value in values:
        if isinstance(value, dict):
            value = value.get("name")
        text = "" if value is None else str(value).strip()
        if text:
            out.append(text)
    return out


def epoch_us(moment: datetime) -> int:
    """A timezone-aware datetime as integer microseconds since the epoch (exact, unlike a float)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def display_title(title: str, relative_path: str) -> str:
    """The title, or the file's name before enrichment found one."""
    return title or PurePosixPath(relative_path).stem


def build_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Typesense document of one item row (DOCUMENT_FIELDS and has_renditions); empty optionals left out."""
    title = display_title(row["title"], row["relative_path"])
    doc: dict[str, Any] = {
        "id": str(row["id"]),
        "title": title,
        "title_sort": title.casefold(),
        "library": row["library_id"],
        "kind": row["kind"],
        "people": names(row["people"]),
        "tags": names(row["tags"]),
        "genres": names(row["genres"]),
        "has_renditions": bool(row["has_renditions"]),
        "created_at": epoch_us(row["created_at"]),
        "updated_at": epoch_us(row["updated_at"]),
    }
    for name in ("original_title", "series_title", "overview"):
        if row[name]:
            doc[name] = row[name]
    if row["year"] is not None:
        doc["year"] = row["year"]
    if row["duration"] is not None:
        doc["duration"] = float(row["duration"])
    resolution = resolution_label(row["width"], row["height"])
    if resolution:
        doc["resolution"] = resolution
    return doc


def _rows() -> QuerySet[MediaItem]:
    # Plain rows, not model instances: building 10,000 instances costs more than the import.
    return MediaItem.objects.annotate(has_renditions=Exists(Rendition.objects.filter(item=OuterRef("pk")))).values(
        *DOCUMENT_FIELDS, "has_renditions"
    )


def load_documents(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The current document of each item that exists, by id; ids of deleted items are absent."""
    ids = list(ids)
    if not ids:
        return {}
    return {row["id"]: build_document(row) for row in _rows().filter(pk__in=ids)}


def iter_document_batches(batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Every item's document, in id order, a batch at a time (keyset pages: no OFFSET scans)."""
    last = 0
    while True:
        batch = list(_rows().filter(pk__gt=last).order_by("pk")[:batch_size])
        if not batch:
            return
        last = batch[-1]["id"]
        yield [build_document(row) for row in batch]
