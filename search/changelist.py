"""The MediaItem admin changelist's search box, answered by Typesense."""

import logging
from collections.abc import Callable

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest

from search import typesense as ts
from search.query import matching_ids

log = logging.getLogger(__name__)

# Typesense answers at most this many hits per page; the changelist shows the best of them.
MAX_HITS = 250

Fallback = Callable[[HttpRequest, QuerySet, str], tuple[QuerySet, bool]]


def changelist_search(
    request: HttpRequest, queryset: QuerySet, search_term: str, fallback: Fallback
) -> tuple[QuerySet, bool]:
    """ModelAdmin.get_search_results through Typesense (typos, prefixes); the database's when it is away."""
    term = search_term.strip()
    if not term:
        return queryset, False
    try:
        ids = matching_ids(term, limit=MAX_HITS)
    except ts.SearchUnavailable as exc:
        log.warning("admin search answered from the database: %s", exc)
        messages.warning(request, "Search is degraded: these results come from the database (exact substrings).")
        return fallback(request, queryset, search_term)
    return queryset.filter(pk__in=ids), False
