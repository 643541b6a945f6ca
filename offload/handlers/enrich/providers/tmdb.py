"""The TMDb provider: searches with what earlier providers found, then reads movie or episode details.

No match (an empty search, a 404) is a permanent answer: the job succeeds with "no match".
A transient failure (429, 5xx, a timeout, the breaker open) raises ProviderUnavailable.
"""

from typing import Any

from offload.handlers.enrich.providers import Context, Proposal, ProviderError, ProviderUnavailable
from offload.lib import tmdb as tmdb_client
from offload.lib.tmdb import TmdbNotFound, TmdbRejected, TmdbUnavailable
from offload.models import MediaKind

CAST_LIMIT = 10


def provide(context: Context) -> Proposal:
    if not tmdb_client.enabled():
        return Proposal(inputs="disabled", status="disabled")
    if context.kind == MediaKind.TRACK:
        return Proposal(inputs="skipped", status="skipped", detail={"reason": "TMDb has no music."})
    try:
        if _is_episode(context):
            return _episode(context)
        return _movie(context)
    except TmdbUnavailable as exc:
        raise ProviderUnavailable(str(exc), retry_after=exc.retry_after) from None
    except TmdbRejected as exc:
        raise ProviderError(str(exc)) from None


def _is_episode(context: Context) -> bool:
    if context.kind == MediaKind.EPISODE:
        return True
    return context.kind == MediaKind.OTHER and context.known.get("episode") is not None


def _no_match(query: Any, reason: str) -> Proposal:
    return Proposal(inputs={"query": query, "match": None}, status="no match", detail={"reason": reason})


def _movie(context: Context) -> Proposal:
    known = context.known
    movie_id = context.hints.get("tmdb_movie_id")
    query = [known.get("title"), known.get("year")]
    if movie_id is None:
        if not known.get("title"):
            return _no_match(query, "No title to search for.")
        match = pick(tmdb_client.search_movie(known["title"], known.get("year")), known["title"], known.get("year"))
        if match is None:
            return _no_match(query, "TMDb found no movie by that title.")
        movie_id = match["id"]
    try:
        details = tmdb_client.movie_details(movie_id)
    except TmdbNotFound:
        return _no_match(query, f"TMDb has no movie {movie_id}.")
    fields = movie_fields(details)
    return Proposal(
        fields=fields,
        inputs={"movie": movie_id, "fields": fields},
        kind=MediaKind.MOVIE,
        detail={"match": {"type": "movie", "id": movie_id, "title": fields.get("title", "")}},
    )


def _episode(context: Context) -> Proposal:
    known = context.known
    season, episode = known.get("season"), known.get("episode")
    series = known.get("series_title") or known.get("title")
    query = [series, season, episode]
    if season is None or episode is None or not series:
        return _no_match(query, "No series, season and episode to look up.")
    tv_id = context.hints.get("tmdb_tv_id")
    show_name = None
    if tv_id is None:
        year = context.hints.get("series_year")
        match = pick(tmdb_client.search_tv(series, year), series, year)
        if match is None:
            return _no_match(query, "TMDb found no TV show by that name.")
        tv_id, show_name = match["id"], match.get("name")
    try:
        details = tmdb_client.episode_details(tv_id, season, episode)
    except TmdbNotFound:
        return _no_match(query, f"TMDb has no episode S{season:02d}E{episode:02d} of show {tv_id}.")
    fields = episode_fields(details)
    if show_name:
        fields["series_title"] = show_name
    return Proposal(
        fields=fields,
        inputs={"tv": tv_id, "fields": fields},
        kind=MediaKind.EPISODE,
        detail={"match": {"type": "episode", "tv_id": tv_id, "season": season, "episode": episode}},
    )


def pick(results: list[dict[str, Any]], title: str, year: int | None) -> dict[str, Any] | None:
    """The best search result: an exact title (and year) match first, else TMDb's first; pure."""
    usable = [r for r in results if isinstance(r.get("id"), int)]
    if not usable:
        return None
    wanted = title.casefold().strip()

    def exact(result: dict[str, Any]) -> bool:
        names = (result.get(k) for k in ("title", "original_title", "name", "original_name"))
        return any(isinstance(n, str) and n.casefold().strip() == wanted for n in names)

    def same_year(result: dict[str, Any]) -> bool:
        date = result.get("release_date") or result.get("first_air_date") or ""
        return year is not None and isinstance(date, str) and date[:4] == str(year)

    for test in (lambda r: exact(r) and same_year(r), exact):
        for result in usable:
            if test(result):
                return result
    return usable[0]


def movie_fields(details: dict[str, Any]) -> dict[str, Any]:
    """Descriptive fields from TMDb movie details (with credits); pure."""
    credits = details.get("credits") or {}
    return {
        "title": details.get("title"),
        "original_title": details.get("original_title"),
        "year": _year(details.get("release_date")),
        "overview": details.get("overview"),
        "genres": [g.get("name") for g in details.get("genres") or [] if isinstance(g, dict)],
        "people": _people(credits.get("crew"), credits.get("cast")),
    }


def episode_fields(details: dict[str, Any]) -> dict[str, Any]:
    """Descriptive fields from TMDb episode details; pure."""
    return {
        "title": details.get("name"),
        "overview": details.get("overview"),
        "year": _year(details.get("air_date")),
        "season": details.get("season_number"),
        "episode": details.get("episode_number"),
        "people": _people(details.get("crew"), details.get("guest_stars")),
    }


def _people(crew: Any, cast: Any) -> list[str]:
    directors = [p.get("name") for p in crew or [] if isinstance(p, dict) and p.get("job") == "Director"]
    actors = [p.get("name") for p in (cast or [])[:CAST_LIMIT] if isinstance(p, dict)]
    return [name for name in (*directors, *actors) if isinstance(name, str) and name]


def _year(date: Any) -> int | None:
    if isinstance(date, str) and len(date) >= 4 and date[:4].isdigit():
        return int(date[:4])
    return None
