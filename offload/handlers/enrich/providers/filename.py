"""The file-name provider: guessit reads title, year, series, season and episode from the path."""

import re
from pathlib import PurePosixPath
from typing import Any

from guessit import guessit
from guessit.api import GuessitException

from offload.handlers.enrich.providers import Context, Proposal, ProviderError
from offload.models import MediaKind

# "01 - Song", "01. Song", "1 Song": the leading track number of a music file name.
TRACK_NUMBER = re.compile(r"^\s*\d{1,3}\s*(?:[-._)]\s*)?")


def provide(context: Context) -> Proposal:
    relative_path = context.item.relative_path
    kind = context.kind
    inputs = {"path": relative_path, "kind": kind}
    if kind == MediaKind.TRACK:
        # guessit knows video releases; for music the file name is the title.
        return Proposal(fields={"title": track_title(relative_path)}, inputs=inputs)
    options = {"type": kind} if kind in (MediaKind.MOVIE, MediaKind.EPISODE) else {}
    try:
        guess = dict(guessit(relative_path, options))
    except GuessitException as exc:
        raise ProviderError(f"guessit could not read the file name: {exc}") from None
    fields, hints, kind_guess = fields_from_guess(guess)
    return Proposal(fields=fields, inputs=inputs, hints=hints, kind=kind_guess)


def fields_from_guess(guess: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """Descriptive fields, hints and a kind from a guessit answer; pure."""
    title = guess.get("title")
    year = guess.get("year")
    season, episode = _first(guess.get("season")), _first(guess.get("episode"))
    if guess.get("type") == "episode" and episode is not None:
        fields: dict[str, Any] = {"series_title": title, "season": season, "episode": episode}
        episode_title = guess.get("episode_title")
        if episode_title:
            fields["title"] = episode_title
        elif title and season is not None:
            fields["title"] = f"{title} S{season:02d}E{episode:02d}"
        # A year in an episode's name dates the series (Doctor Who 2005), not the episode.
        hints = {"series_year": year} if isinstance(year, int) else {}
        return fields, hints, MediaKind.EPISODE if season is not None else None
    fields = {"title": title, "year": year}
    return fields, {}, MediaKind.MOVIE if isinstance(year, int) else None


def track_title(relative_path: str) -> str:
    """A music file's title from its name: the stem without a leading track number."""
    stem = PurePosixPath(relative_path).stem
    return TRACK_NUMBER.sub("", stem, count=1).strip() or stem


def _first(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) else None
