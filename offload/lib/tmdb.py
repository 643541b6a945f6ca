"""The one wrapper for the TMDb v3 HTTP API.

Every call goes: Redis response cache → shared circuit breaker → shared rate limit →
one GET with connect and read timeouts. Nothing here retries in a loop: a transient
failure raises TmdbUnavailable and the job queue runs the job again later, so a worker is
never held by an upstream outage. The API key never appears in an error, a log line or a
cache key.
"""

import hashlib
import json
import logging
import os
import random
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError
from requests.adapters import HTTPAdapter

from offload.lib import limits
from offload.lib.breaker import CircuitBreaker
from offload.lib.redis_state import key as state_key
from offload.lib.redis_state import state_redis

log = logging.getLogger(__name__)

SEARCH, DETAILS = "search", "details"
# A TMDb answer is a few kB; anything far larger is not TMDb talking.
MAX_BODY_BYTES = 5 * 1024 * 1024
# Retry-After values beyond this are taken as this: an hour is the longest we pause for.
MAX_RETRY_AFTER = 3600.0
USER_AGENT = "Offload (self-hosted media library)"


class TmdbError(Exception):
    """Base of the client's errors; messages are safe to show (no key, no URL)."""


class TmdbNotFound(TmdbError):
    """TMDb has no such resource (404): a permanent answer, not worth a retry."""


class TmdbRejected(TmdbError):
    """TMDb refused the request (a bad key, a bad parameter): retrying would not help."""


class TmdbUnavailable(TmdbError):
    """TMDb is away, slow, failing or asking us to slow down: try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        # Seconds the service asked us to wait (Retry-After) or the breaker still holds; None: use the backoff.
        self.retry_after = retry_after


def enabled() -> bool:
    """Whether the TMDb provider is configured (it needs an API key)."""
    return bool(settings.TMDB_API_KEY)


def search_movie(query: str, year: int | None = None) -> list[dict[str, Any]]:
    """TMDb's movie search results, best match first."""
    data = get("/search/movie", {"query": query, "year": year, "include_adult": "false"}, kind=SEARCH)
    return _results(data)


def search_tv(query: str, year: int | None = None) -> list[dict[str, Any]]:
    """TMDb's TV show search results, best match first."""
    data = get("/search/tv", {"query": query, "first_air_date_year": year, "include_adult": "false"}, kind=SEARCH)
    return _results(data)


def movie_details(movie_id: int) -> dict[str, Any]:
    """A movie's details with its credits; TmdbNotFound when TMDb has no such movie."""
    return get(f"/movie/{int(movie_id)}", {"append_to_response": "credits"}, kind=DETAILS)


def episode_details(tv_id: int, season: int, episode: int) -> dict[str, Any]:
    """One TV episode's details (crew and guest stars included); TmdbNotFound when it does not exist."""
    return get(f"/tv/{int(tv_id)}/season/{int(season)}/episode/{int(episode)}", {}, kind=DETAILS)


def _results(data: dict[str, Any]) -> list[dict[str, Any]]:
    results = data.get("results")
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def service_id() -> str:
    """Names the configured TMDb service in Redis keys: limits, breaker and cache are per base URL."""
    return hashlib.sha256(settings.TMDB_BASE_URL.encode()).hexdigest()[:16]


def breaker() -> CircuitBreaker:
    """The breaker every worker shares for the configured TMDb service."""
    return CircuitBreaker(
        f"tmdb:{service_id()}",
        failure_threshold=settings.TMDB_BREAKER_FAILURES,
        cooldown=settings.TMDB_BREAKER_COOLDOWN,
        trial_timeout=settings.TMDB_CONNECT_TIMEOUT + settings.TMDB_READ_TIMEOUT + 5,
    )


def cache_key(path: str, params: dict[str, Any]) -> str:
    """The Redis key of a cached answer; built from the request without the API key."""
    canonical = json.dumps([settings.TMDB_BASE_URL, path, sorted(params.items())], separators=(",", ":"))
    return state_key("tmdb", "cache", hashlib.sha256(canonical.encode()).hexdigest())


def get(path: str, params: dict[str, Any], *, kind: str) -> dict[str, Any]:
    """GET a TMDb resource as a JSON object: from the cache, else through breaker and rate limit."""
    ttl = settings.TMDB_CACHE_DETAILS_SECONDS if kind == DETAILS else settings.TMDB_CACHE_SEARCH_SECONDS
    query = {k: v for k, v in {**params, "language": settings.TMDB_LANGUAGE}.items() if v not in (None, "")}
    ckey = cache_key(path, query)
    try:
        entry = _cached(ckey)
        if entry is not None:
            if entry.get("status") == 404:
                raise TmdbNotFound("TMDb has no such entry.")
            return entry["data"]
        _pass_breaker()
        _take_rate_slot()
        status, data = _fetch(path, query)
        if status == 404:
            # Remembered only as long as a search: the entry may yet appear.
            negative_ttl = min(ttl, settings.TMDB_CACHE_SEARCH_SECONDS)
            if negative_ttl > 0:
                state_redis().set(ckey, json.dumps({"status": 404}), ex=negative_ttl)
            raise TmdbNotFound("TMDb has no such entry.")
        if ttl > 0:
            state_redis().set(ckey, json.dumps({"status": 200, "data": data}), ex=ttl)
        return data
    except RedisError as exc:
        # Without Redis there is no shared rate limit, so no call may go out.
        raise TmdbUnavailable(
            f"Redis, which holds the shared TMDb rate limit, is unreachable ({type(exc).__name__})."
        ) from exc


def _cached(ckey: str) -> dict[str, Any] | None:
    raw = state_redis().get(ckey)
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or (entry.get("status") != 404 and not isinstance(entry.get("data"), dict)):
        log.warning("ignoring an unreadable TMDb cache entry %s", ckey)
        return None
    return entry


def _pass_breaker() -> None:
    state = breaker().allow()
    if not state.allowed:
        raise TmdbUnavailable(
            f"TMDb calls are paused after repeated failures (circuit {state.state}); "
            f"next try in {state.retry_after:.0f} s.",
            retry_after=state.retry_after,
        )


def _take_rate_slot() -> None:
    """Wait (briefly) for a slot in the shared rate limit; past TMDB_RATE_MAX_WAIT, give up for now."""
    limit, window = settings.TMDB_RATE_LIMIT, settings.TMDB_RATE_WINDOW
    deadline = time.monotonic() + settings.TMDB_RATE_MAX_WAIT
    while True:
        decision = limits.acquire("tmdb", service_id(), limit, window)
        if decision.allowed:
            return
        # A little jitter, so workers waiting for the same slot do not all ask at once.
        pause = decision.retry_after + random.uniform(0, min(0.1, window / limit))
        if time.monotonic() + pause > deadline:
            raise TmdbUnavailable(
                f"The shared TMDb rate limit ({limit} requests per {window:g} s) is taken by other work.",
                retry_after=decision.retry_after,
            )
        time.sleep(pause)


_sessions: dict[int, requests.Session] = {}


def _session() -> requests.Session:
    """One keep-alive session per process; a forked worker must not share its parent's sockets."""
    pid = os.getpid()
    session = _sessions.get(pid)
    if session is None:
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        # No urllib3 retries: a transient failure goes back to the job queue and its backoff.
        adapter = HTTPAdapter(max_retries=0, pool_connections=2, pool_maxsize=4)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        _sessions.clear()
        _sessions[pid] = session
    return session


def _credentials(query: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """v3 API keys go in the query; v4 read access tokens (JWTs) in a Bearer header."""
    api_key = settings.TMDB_API_KEY
    if api_key.startswith("eyJ"):
        return query, {"Authorization": f"Bearer {api_key}"}
    return {**query, "api_key": api_key}, {}


def _fetch(path: str, query: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One GET; answers (200, body) or (404, {}), raises for everything else."""
    connect, read = settings.TMDB_CONNECT_TIMEOUT, settings.TMDB_READ_TIMEOUT
    params, headers = _credentials(query)
    circuit = breaker()
    try:
        response = _session().get(
            settings.TMDB_BASE_URL + path, params=params, headers=headers, timeout=(connect, read), stream=True
        )
        with response:
            body = _read_body(response, deadline=time.monotonic() + connect + 2 * read)
    except requests.Timeout:
        circuit.record_failure()
        raise TmdbUnavailable(
            f"TMDb did not answer within the timeouts ({connect:g} s connect, {read:g} s read)."
        ) from None
    except requests.RequestException as exc:
        # The exception's text holds the URL, and with it the API key: name the type only.
        circuit.record_failure()
        raise TmdbUnavailable(f"Could not reach TMDb ({type(exc).__name__}).") from None

    status = response.status_code
    if status == 200:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            circuit.record_failure()
            raise TmdbUnavailable("TMDb answered 200 with something other than a JSON object.")
        circuit.record_success()
        return status, data
    if status == 404:
        circuit.record_success()
        return status, {}
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429 or status >= 500:
        if retry_after is not None:
            # Every worker pauses until the service said it would take calls again.
            circuit.hold_open(retry_after)
        else:
            circuit.record_failure()
        hint = f"; it asked us to wait {retry_after:g} s" if retry_after is not None else ""
        what = "is rate limiting this server" if status == 429 else "failed"
        raise TmdbUnavailable(f"TMDb {what} (HTTP {status}){hint}.", retry_after=retry_after)
    # Other 4xx: the service is up, but this request will never work as it is.
    circuit.record_success()
    raise TmdbRejected(f"TMDb refused the request (HTTP {status}: {_status_message(body)}).")


def _read_body(response: requests.Response, *, deadline: float) -> bytes:
    """The body, bounded in size and total time (a read timeout alone allows a slow drip forever)."""
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise requests.exceptions.ContentDecodingError("the answer is too large")
        if time.monotonic() > deadline:
            raise requests.exceptions.ReadTimeout("the answer took too long")
        chunks.append(chunk)
    return b"".join(chunks)


def _status_message(body: bytes) -> str:
    try:
        message = json.loads(body).get("status_message")
    except (ValueError, AttributeError):
        message = None
    return str(message)[:200] if message else "no reason given"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = (when - timezone.now()).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER))
