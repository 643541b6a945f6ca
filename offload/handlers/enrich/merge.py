"""Merging providers' proposals into an item's descriptive fields; pure, no I/O.

Rules:
- Providers are given in their configured order; where two propose a field, the later wins.
- An empty proposal (None, "", []) never erases a value.
- A locked field (an operator's edit) is never written.
- A field last set by a provider that could not answer this time keeps its value, unless a
  provider later in the order than that one proposes it.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from offload.models import MediaItem

USER = "user"

# Bounds match the API's DescriptiveSerializer, so an enriched item always validates there.
TEXT_LIMITS = {"title": 500, "original_title": 500, "series_title": 500, "overview": 20_000}
LIST_LIMITS = {"genres": (100, 50), "people": (200, 200), "tags": (100, 100)}  # (item length, items)
NUMBER_RANGES = {"year": (1800, 2200), "season": (0, 9999), "episode": (0, 9999)}


def normalize(name: str, value: Any) -> Any:
    """A proposed value cleaned to fit the field, or None when nothing usable is left."""
    if value is None:
        return None
    if name in TEXT_LIMITS:
        text = " ".join(str(value).split()) if name != "overview" else str(value).strip()
        return text[: TEXT_LIMITS[name]] or None
    if name in NUMBER_RANGES:
        low, high = NUMBER_RANGES[name]
        try:
            number = int(value)
        except (TypeError, ValueError):
            return None
        return number if low <= number <= high else None
    if name in LIST_LIMITS:
        length, count = LIST_LIMITS[name]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list | tuple):
            return None
        cleaned, seen = [], set()
        for entry in values:
            text = " ".join(str(entry).split())[:length] if entry is not None else ""
            if text and text.casefold() not in seen:
                seen.add(text.casefold())
                cleaned.append(text)
        return cleaned[:count] or None
    return None


def clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Only descriptive fields, normalized, without empty values."""
    cleaned = {}
    for name, value in fields.items():
        if name in MediaItem.DESCRIPTIVE_FIELDS:
            value = normalize(name, value)
            if value is not None:
                cleaned[name] = value
    return cleaned


@dataclass(frozen=True)
class MergeResult:
    # The fields whose value changes, with their new values.
    changes: dict[str, Any]
    # The whole provenance map after the merge.
    provenance: dict[str, str]
    # Fields a provider proposed a different value for, kept because they are locked.
    kept_locked: list[str] = field(default_factory=list)


def merge(
    current: dict[str, Any],
    provenance: dict[str, str],
    locked: Iterable[str],
    proposals: Sequence[tuple[str, dict[str, Any] | None]],
) -> MergeResult:
    """Merge proposals, in provider order; a None proposal means that provider could not answer."""
    locked = set(locked)
    position = {name: index for index, (name, _) in enumerate(proposals)}
    failed = {name for name, fields in proposals if fields is None}
    winners: dict[str, tuple[str, Any]] = {}
    for name, fields in proposals:
        for field_name, value in clean_fields(fields or {}).items():
            winners[field_name] = (name, value)

    changes: dict[str, Any] = {}
    new_provenance = dict(provenance)
    kept_locked = []
    for field_name, (name, value) in winners.items():
        if field_name in locked:
            if current.get(field_name) != value:
                kept_locked.append(field_name)
            continue
        owner = provenance.get(field_name)
        if owner in failed and position[owner] > position[name]:
            continue
        if current.get(field_name) != value:
            changes[field_name] = value
        new_provenance[field_name] = name
    return MergeResult(changes=changes, provenance=new_provenance, kept_locked=sorted(kept_locked))
