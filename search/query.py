"""Searching media: Typesense parameters (pure), the answer docs/api.md gives, and the database fallback."""

import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils.html import escape

from offload import access
from offload.models import MediaItem
from search import cache
from search import typesense as ts
from search.documents import display_title, names, resolution_label
from search.metrics import SEARCH_FALLBACKS

log = logging.getLogger(__name__)

SORTS = {
    "relevance": "_text_match:desc,created_at:desc",
    "year": "year:asc,_text_match:desc",
    "-year": "year:desc,_text_match:desc",
    "title": "title_sort:asc",
    "-title": "title_sort:desc",
    "added": "created_at:asc",
    "-added": "created_at:desc",
}
DB_ORDER = {
    "relevance": ("-created_at", "-id"),
    "year": ("year", "id"),
    "-year": ("-year", "-id"),
    "title": ("title", "relative_path", "id"),
    "-title": ("-title", "-relative_path", "-id"),
    "added": ("created_at", "id"),
    "-added": ("-created_at", "-id"),
}
MAX_FACET_VALUES = 50
HIT_FIELDS = ("id", "title", "kind", "year", "genres", "library")


@dataclass(frozen=True)
class SearchRequest:
    """What a search asks for, validated (the API's serializer builds it)."""

    q: str = ""
    kind: str | None = None
    genre: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    library: int | None = None
    page: int = 1
    per_page: int = 20
    sort: str = "relevance"


def visible_libraries(user) -> list[int] | None:
    """The ids of the libraries whose items the user may find; None means all of them."""
    if user.is_staff:
        return None
    return sorted(access.libraries_for(user).values_list("pk", flat=True))


def _quoted(value: str) -> str:
    # Typesense takes any string between backticks; a backtick inside cannot be escaped.
    return "`" + value.replace("`", "") + "`"


def libraries_to_search(request: SearchRequest, visible: list[int] | None) -> list[int] | None:
    """The library filter: the visible ones, narrowed to the one asked for. [] finds nothing."""
    if request.library is None:
        return visible
    if visible is None or request.library in visible:
        return [request.library]
    return []


def build_params(request: SearchRequest, visible: list[int] | None) -> dict[str, Any] | None:
    """Typesense search parameters; None when the user may see nothing this search could find."""
    libraries = libraries_to_search(request, visible)
    if libraries == []:
        return None
    filters = []
    if libraries is not None:
        filters.append(f"library:=[{','.join(str(i) for i in libraries)}]")
    if request.kind:
        filters.append(f"kind:={_quoted(request.kind)}")
    if request.genre:
        filters.append(f"genres:=[{_quoted(request.genre)}]")
    if request.year_from is not None:
        filters.append(f"year:>={request.year_from}")
    if request.year_to is not None:
        filters.append(f"year:<={request.year_to}")
    params: dict[str, Any] = {
        "q": request.q.strip() or "*",
        "query_by": ",".join(ts.QUERY_FIELDS),
        "query_by_weights": ",".join(str(w) for w in ts.QUERY_WEIGHTS),
        # Typo tolerance and prefix matching, for every field searched.
        "num_typos": 2,
        "prefix": "true",
        "facet_by": ",".join(ts.FACET_FIELDS),
        "max_facet_values": MAX_FACET_VALUES,
        "sort_by": SORTS[request.sort],
        "include_fields": ",".join(HIT_FIELDS),
        "highlight_fields": ",".join(ts.QUERY_FIELDS),
        # Typesense returns the text around a match as it is stored; it is escaped below,
        # and these markers (no HTML in them) become the only markup: <mark>.
        "highlight_start_tag": MARK_START,
        "highlight_end_tag": MARK_END,
        "page": request.page,
        "per_page": request.per_page,
    }
    if filters:
        params["filter_by"] = " && ".join(filters)
    return params


MARK_START = "[[offload-mark]]"
MARK_END = "[[/offload-mark]]"


def safe_snippet(snippet: str) -> str:
    """A highlight as HTML: the stored text escaped, the matches in <mark>; pure."""
    return escape(snippet).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def _highlight(hit: dict[str, Any]) -> dict[str, Any]:
    marked: dict[str, Any] = {}
    for entry in hit.get("highlights", []):
        if "snippet" in entry:
            marked[entry["field"]] = safe_snippet(entry["snippet"])
        elif "snippets" in entry:
            marked[entry["field"]] = [safe_snippet(s) for s in entry["snippets"]]
    return marked


def map_answer(raw: dict[str, Any], request: SearchRequest) -> dict[str, Any]:
    """Typesense's answer in the shape docs/api.md gives."""
    hits = []
    for hit in raw.get("hits", []):
        doc = hit["document"]
        hits.append(
            {
                "id": int(doc["id"]),
                "title": doc.get("title", ""),
                "kind": doc.get("kind"),
                "year": doc.get("year"),
                "genres": doc.get("genres", []),
                "library": doc.get("library"),
                "highlight": _highlight(hit),
            }
        )
    facets = {
        facet["field_name"]: {count["value"]: count["count"] for count in facet.get("counts", [])}
        for facet in raw.get("facet_counts", [])
    }
    return {
        "found": raw.get("found", 0),
        "page": request.page,
        "per_page": request.per_page,
        "degraded": False,
        "hits": hits,
        "facets": facets,
    }


def empty_answer(request: SearchRequest, *, degraded: bool = False) -> dict[str, Any]:
    return {
        "found": 0,
        "page": request.page,
        "per_page": request.per_page,
        "degraded": degraded,
        "hits": [],
        "facets": {},
    }


def search_media(user, request: SearchRequest) -> dict[str, Any]:
    """Search what the user may see: Typesense, or the database with "degraded": true."""
    params = build_params(request, visible_libraries(user))
    if params is None:
        return empty_answer(request)
    cached, key = cache.get(params)
    if cached is not None:
        return cached
    try:
        raw = ts.search(params)
    except ts.SearchUnavailable as exc:
        SEARCH_FALLBACKS.inc()
        log.warning("search answered from the database: %s", exc)
        return database_search(user, request)
    answer = map_answer(raw, request)
    cache.put(key, answer)
    return answer


# --- The database fallback --------------------------------------------------------


def _text_match(term: str) -> Q:
    return (
        Q(title__icontains=term)
        | Q(original_title__icontains=term)
        | Q(series_title__icontains=term)
        | Q(overview__icontains=term)
        | Q(people__icontains=term)
        | Q(tags__icontains=term)
        | Q(genres__icontains=term)
        | Q(kind__iexact=term)
        | Q(relative_path__icontains=term)
    )


def filtered_items(user, request: SearchRequest) -> QuerySet[MediaItem]:
    """The items matching the request in the database: every word somewhere, and the filters."""
    qs = access.media_for(user)
    for term in request.q.split():
        qs = qs.filter(_text_match(term))
    if request.kind:
        qs = qs.filter(kind=request.kind)
    if request.genre:
        if connection.features.supports_json_field_contains:
            qs = qs.filter(genres__contains=[request.genre])
        else:
            # SQLite has no JSON containment; the quoted name inside the JSON text is close.
            qs = qs.filter(genres__icontains=f'"{request.genre}"')
    if request.year_from is not None:
        qs = qs.filter(year__gte=request.year_from)
    if request.year_to is not None:
        qs = qs.filter(year__lte=request.year_to)
    if request.library is not None:
        qs = qs.filter(library_id=request.library)
    return qs


def _mark(text: str, terms: list[str]) -> str | None:
    if not terms or not text:
        return None
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    pieces, last, found = [], 0, False
    for match in pattern.finditer(text):
        found = True
        pieces.append(escape(text[last : match.start()]))
        pieces.append(f"<mark>{escape(match.group())}</mark>")
        last = match.end()
    pieces.append(escape(text[last:]))
    return "".join(pieces) if found else None


def _database_facets(qs: QuerySet[MediaItem]) -> dict[str, dict[str, int]]:
    unordered = qs.order_by()
    facets: dict[str, Counter] = {name: Counter() for name in ts.FACET_FIELDS}
    for column, facet in (("kind", "kind"), ("year", "year"), ("library_id", "library")):
        for row in unordered.values(column).annotate(n=Count("pk")):
            if row[column] is not None:
                facets[facet][str(row[column])] += row["n"]
    for genres, width, height in unordered.values_list("genres", "width", "height").iterator(chunk_size=2000):
        facets["genres"].update(names(genres))
        label = resolution_label(width, height)
        if label:
            facets["resolution"][label] += 1
    # Every facet, empty ones included, as Typesense answers them.
    return {name: dict(counts.most_common(MAX_FACET_VALUES)) for name, counts in facets.items()}


def database_search(user, request: SearchRequest) -> dict[str, Any]:
    """The answer from the database alone: plain substring matching, the same filters and shape."""
    qs = filtered_items(user, request)
    found = qs.count()
    start = (request.page - 1) * request.per_page
    rows = qs.order_by(*DB_ORDER[request.sort])[start : start + request.per_page]
    terms = request.q.split()
    hits = []
    for item in rows:
        title = display_title(item.title, item.relative_path)
        marked = _mark(title, terms)
        hits.append(
            {
                "id": item.pk,
                "title": title,
                "kind": item.kind,
                "year": item.year,
                "genres": names(item.genres),
                "library": item.library_id,
                "highlight": {"title": marked} if marked else {},
            }
        )
    answer = empty_answer(request, degraded=True)
    answer.update(found=found, hits=hits, facets=_database_facets(qs))
    return answer


def matching_ids(term: str, limit: int = 250) -> list[int]:
    """Ids of the items best matching a term, for the admin's changelist search (all items)."""
    params = build_params(SearchRequest(q=term, per_page=limit), None)
    params["include_fields"] = "id"
    for unneeded in ("facet_by", "max_facet_values", "highlight_fields"):
        params.pop(unneeded)
    raw = ts.search(params)
    return [int(hit["document"]["id"]) for hit in raw.get("hits", [])]
