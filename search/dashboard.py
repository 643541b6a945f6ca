"""Search's panel on the admin's operations dashboard (registered in SearchConfig.ready())."""

import logging
from typing import Any

from offload.models import MediaItem
from search import typesense as ts
from search.models import IndexBuild
from search.sync import backlog

log = logging.getLogger(__name__)

TEMPLATE = "search/admin/dashboard_panel.html"


def search_panel() -> dict[str, Any]:
    """Documents in Typesense against rows in the database, the outbox and the last reindex."""
    waiting, oldest = backlog()
    last_build = IndexBuild.objects.values("collection", "status", "started_at", "finished_at", "documents").first()
    state: dict[str, Any] = {
        "rows": MediaItem.objects.count(),
        "pending": waiting,
        "pending_oldest_age": oldest,
        "last_build": last_build,
        "documents": None,
        "collection": None,
        "error": "",
    }
    client = ts.read_client()
    if client is None:
        state["error"] = "not configured (TYPESENSE_URL is not set)"
        return state
    try:
        # Typesense resolves the alias: this is the collection searches read.
        collection = client.collections[ts.alias_name()].retrieve()
    except ts.NotFound:
        state["error"] = "no index yet"
        return state
    except ts.ERRORS as exc:
        log.warning("dashboard: Typesense did not answer: %s", exc)
        state["error"] = f"unreachable ({type(exc).__name__})"
        return state
    state["collection"] = collection.get("name")
    state["documents"] = collection.get("num_documents", 0)
    # Items not indexed (or documents not deleted) beyond the writes already on their way.
    state["drift"] = state["rows"] - state["documents"]
    state["unexplained_drift"] = abs(state["drift"]) > waiting
    return state
