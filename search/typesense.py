"""The one wrapper around the Typesense client: read and write clients, the media schema, the alias.

Reads fail fast (a short timeout, at most one retry, then a short pause before trying again) so
a request never waits long on a sick server. Writes run in tasks only, in batches, and return
the outcome of every document so the caller can requeue exactly the ones that failed.
"""

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import typesense
from django.conf import settings
from typesense import exceptions as ts_errors

log = logging.getLogger(__name__)

# Everything the client raises when Typesense did not do what was asked: its own errors
# (HTTP status codes) and its HTTP library's (refused connections, timeouts).
ERRORS: tuple[type[Exception], ...] = (ts_errors.TypesenseClientError, httpx.HTTPError)
NotFound = ts_errors.ObjectNotFound

# Fields a query searches, in order of weight. The facets genres and kind are indexed already
# (every field of media_schema is), so searching them needs no reindex: "Drama" finds dramas.
QUERY_FIELDS = ("title", "original_title", "series_title", "people", "tags", "genres", "kind", "overview")
QUERY_WEIGHTS = (8, 6, 4, 3, 3, 2, 2, 1)
FACET_FIELDS = ("kind", "genres", "year", "library", "resolution")
DELETE_CHUNK = 200


class SearchUnavailable(Exception):
    """Typesense cannot answer this read now; the caller answers from the database."""


_clients: dict[tuple, typesense.Client] = {}
_clients_lock = threading.Lock()
# Per Typesense URL: the monotonic time before which reads are not even tried.
_read_paused_until: dict[str, float] = {}


def nodes(url: str) -> list[dict[str, Any]]:
    """TYPESENSE_URL's nodes: one URL, or a Typesense cluster's nodes as comma-separated URLs."""
    return [_node(part.strip()) for part in url.split(",") if part.strip()]


def _node(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    return {"host": parts.hostname, "port": parts.port or (443 if scheme == "https" else 8108), "protocol": scheme}


def _client(role: str) -> typesense.Client | None:
    url = settings.TYPESENSE_URL
    if not url:
        return None
    # One client (and its connection pool) per process and role: a forked worker must not
    # share its parent's sockets, and settings may change between calls (tests).
    key = (role, url, settings.TYPESENSE_API_KEY, os.getpid())
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                if role == "read":
                    timeout, retries, interval = settings.SEARCH_READ_TIMEOUT, 1, 0.05
                else:
                    timeout, retries, interval = settings.SEARCH_WRITE_TIMEOUT, 2, 0.25
                client = typesense.Client(
                    {
                        # With several nodes the client moves on to the next one when a node
                        # fails, and leaves a failed node alone for a minute.
                        "nodes": nodes(url),
                        "api_key": settings.TYPESENSE_API_KEY,
                        "connection_timeout_seconds": timeout,
                        "num_retries": retries,
                        "retry_interval_seconds": interval,
                    }
                )
                _clients[key] = client
    return client


def read_client() -> typesense.Client | None:
    """A client for reads: a short timeout and at most one retry. None when unconfigured."""
    return _client("read")


def write_client() -> typesense.Client | None:
    """A client for task writes: a longer timeout and a couple of retries. None when unconfigured."""
    return _client("write")


def require_write_client() -> typesense.Client:
    client = write_client()
    if client is None:
        raise SearchUnavailable("TYPESENSE_URL is not set.")
    return client


# --- The collection ------------------------------------------------------------


def alias_name() -> str:
    return settings.SEARCH_ALIAS


def new_collection_name() -> str:
    """A versioned name for a rebuilt collection: the alias plus a millisecond timestamp."""
    return f"{alias_name()}_v{time.time_ns() // 1_000_000}"


def media_schema(name: str) -> dict[str, Any]:
    """The media collection: the search fields of docs/api.md, the facets and what drift compares."""

    def field(name: str, type_: str, **options: Any) -> dict[str, Any]:
        return {"name": name, "type": type_, **options}

    return {
        "name": name,
        "fields": [
            field("title", "string"),
            field("title_sort", "string", sort=True),
            field("original_title", "string", optional=True),
            field("series_title", "string", optional=True),
            field("overview", "string", optional=True),
            field("people", "string[]", optional=True),
            field("tags", "string[]", optional=True),
            field("library", "int64", facet=True),
            field("kind", "string", facet=True),
            field("year", "int32", facet=True, optional=True),
            field("genres", "string[]", facet=True, optional=True),
            field("duration", "float", optional=True),
            field("resolution", "string", facet=True, optional=True),
            field("has_renditions", "bool"),
            field("created_at", "int64"),
            field("updated_at", "int64"),
        ],
        "default_sorting_field": "created_at",
        # File names become titles until enrichment: "the_matrix.1999" should match "matrix".
        "token_separators": ["-", "_", "."],
    }


def alias_target(client: typesense.Client) -> str | None:
    """The collection the alias points at, or None when there is no alias yet."""
    try:
        return client.aliases[alias_name()].retrieve()["collection_name"]
    except NotFound:
        return None


def create_collection(client: typesense.Client, name: str) -> None:
    """Create the named media collection; one that already exists is left as it is."""
    try:
        client.collections.create(media_schema(name))
    except ts_errors.ObjectAlreadyExists:
        pass


def ensure_collection(client: typesense.Client) -> str:
    """The alias's collection, created on first use."""
    target = alias_target(client)
    if target is not None:
        return target
    # A fixed first name: two workers racing here create and point at the same collection.
    name = f"{alias_name()}_v1"
    create_collection(client, name)
    client.aliases.upsert(alias_name(), {"collection_name": name})
    log.info("created search collection %s behind alias %s", name, alias_name())
    return name


def swap_alias(client: typesense.Client, name: str) -> str | None:
    """Point the alias at the named collection in one step; answer the one it pointed at."""
    previous = alias_target(client)
    client.aliases.upsert(alias_name(), {"collection_name": name})
    return previous


def drop_collection(client: typesense.Client, name: str) -> None:
    try:
        client.collections[name].delete()
    except NotFound:
        pass


def collection_names(client: typesense.Client) -> list[str]:
    return [c["name"] for c in client.collections.retrieve()]


# --- Writes ----------------------------------------------------------------------


def import_documents(client: typesense.Client, collection: str, documents: list[dict[str, Any]]) -> dict[str, str]:
    """Upsert documents in one request; answer {id: error} for each document Typesense refused."""
    if not documents:
        return {}
    results = client.collections[collection].documents.import_(documents, {"action": "upsert"})
    if len(results) != len(documents):
        raise ts_errors.TypesenseClientError(f"import answered {len(results)} results for {len(documents)} documents")
    failed: dict[str, str] = {}
    for document, result in zip(documents, results, strict=True):
        if not result.get("success"):
            failed[document["id"]] = f"{result.get('code', '?')}: {result.get('error', 'refused')}"
    return failed


def delete_documents(client: typesense.Client, collection: str, ids: Iterable[int | str]) -> None:
    """Delete documents by id; ids that are not indexed are no error."""
    ids = [str(int(i)) for i in ids]
    for start in range(0, len(ids), DELETE_CHUNK):
        chunk = ids[start : start + DELETE_CHUNK]
        try:
            client.collections[collection].documents.delete({"filter_by": f"id:[{','.join(chunk)}]"})
        except NotFound:
            # No such collection: nothing of it to delete.
            return


def export_documents(client: typesense.Client, collection: str, fields: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Every document of the collection, with only the given fields."""
    text = client.collections[collection].documents.export({"include_fields": ",".join(fields)})
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


# --- Reads -----------------------------------------------------------------------


def search(params: dict[str, Any]) -> dict[str, Any]:
    """Run one search against the alias; raises SearchUnavailable when Typesense cannot answer."""
    client = read_client()
    if client is None:
        raise SearchUnavailable("TYPESENSE_URL is not set.")
    url = settings.TYPESENSE_URL
    if time.monotonic() < _read_paused_until.get(url, 0.0):
        raise SearchUnavailable("Typesense failed moments ago; not asking again yet.")
    try:
        answer = client.collections[alias_name()].documents.search(params)
    except NotFound as exc:
        # The server answers; there is no index yet (nothing synced, or a fresh server).
        raise SearchUnavailable(f"no search collection: {exc}") from exc
    except ts_errors.RequestMalformed as exc:
        log.error("Typesense refused search parameters %s: %s", params, exc)
        raise SearchUnavailable(str(exc)) from exc
    except ERRORS as exc:
        # A sick server would cost every request its timeout: stop asking for a moment.
        _read_paused_until[url] = time.monotonic() + settings.SEARCH_READ_PAUSE_SECONDS
        raise SearchUnavailable(f"{type(exc).__name__}: {exc}") from exc
    _read_paused_until.pop(url, None)
    return answer
