"""A TMDb-shaped HTTP server on 127.0.0.1, run in a thread, for the enrichment tests.

It serves the v3 endpoints Offload uses from the movies and shows a test adds, records
every request that reaches it, and can be told to answer the next requests with a 429, a
500 or a stalled response.
"""

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings

from offload.lib.redis_state import state_redis

API_KEY = "fake-tmdb-key"
# What TMDb calls a v4 "API read access token", a JWT; it goes in a Bearer header.
READ_TOKEN = "eyJhbGciOiJIUzI1NiJ9.fake-read-token"
NOT_FOUND = {"success": False, "status_code": 34, "status_message": "The resource you requested could not be found."}


@dataclass
class Seen:
    at: float  # time.monotonic() when the request arrived
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


class FakeTmdb:
    def __init__(self, *, stall_seconds: float = 5.0) -> None:
        self.movies: dict[int, dict[str, Any]] = {}
        self.shows: dict[int, dict[str, Any]] = {}
        self.episodes: dict[tuple[int, int, int], dict[str, Any]] = {}
        self.seen: list[Seen] = []
        self.stall_seconds = stall_seconds
        self.retry_after = "7"
        self._failures: deque[str] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- catalogue ---------------------------------------------------------

    def add_movie(self, movie_id: int, title: str, release_date: str, **details: Any) -> None:
        self.movies[movie_id] = {
            "id": movie_id,
            "title": title,
            "original_title": details.pop("original_title", title),
            "release_date": release_date,
            "overview": details.pop("overview", ""),
            "genres": [{"id": i, "name": g} for i, g in enumerate(details.pop("genres", []), 1)],
            "credits": {
                "cast": [{"name": n, "order": i} for i, n in enumerate(details.pop("cast", []))],
                "crew": [{"name": n, "job": "Director"} for n in details.pop("directors", [])],
            },
            "popularity": 12.5,
            **details,
        }

    def add_episode(self, show_id: int, show_name: str, season: int, episode: int, name: str, **details: Any) -> None:
        self.shows[show_id] = {"id": show_id, "name": show_name, "original_name": show_name, "first_air_date": ""}
        self.episodes[(show_id, season, episode)] = {
            "id": show_id * 1000 + season * 100 + episode,
            "name": name,
            "season_number": season,
            "episode_number": episode,
            "air_date": details.pop("air_date", ""),
            "overview": details.pop("overview", ""),
            "crew": [{"name": n, "job": "Director"} for n in details.pop("directors", [])],
            "guest_stars": [{"name": n} for n in details.pop("guest_stars", [])],
            **details,
        }

    # --- behaviour ---------------------------------------------------------

    def fail_next(self, *modes: str) -> None:
        """Answer the next requests, one mode each: "429", "500" or "stall"."""
        with self._lock:
            self._failures.extend(modes)

    def paths(self) -> list[str]:
        with self._lock:
            return [s.path for s in self.seen]

    def arrival_times(self) -> list[float]:
        with self._lock:
            return sorted(s.at for s in self.seen)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/3"

    def start(self) -> "FakeTmdb":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-tmdb", daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- serving -----------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.seen.append(Seen(time.monotonic(), parts.path, query, dict(request.headers.items())))
            mode = self._failures.popleft() if self._failures else None
        if mode == "429":
            message = {"success": False, "status_code": 25, "status_message": "Your request count is over the limit."}
            return self._send(request, 429, message, {"Retry-After": self.retry_after})
        if mode == "500":
            return self._send(request, 500, {"success": False, "status_code": 11, "status_message": "Internal error."})
        if mode == "stall":
            self._release.wait(self.stall_seconds)
        bearer = request.headers.get("Authorization", "") == f"Bearer {READ_TOKEN}"
        if query.get("api_key") != API_KEY and not bearer:
            message = {
                "success": False,
                "status_code": 7,
                "status_message": "Invalid API key: You must be granted a valid key.",
            }
            return self._send(request, 401, message)
        status, body = self._route(parts.path, query)
        self._send(request, status, body)

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path == "/3/search/movie":
            wanted, year = query.get("query", "").casefold(), query.get("year")
            results = [
                {k: m[k] for k in ("id", "title", "original_title", "release_date", "overview")}
                for m in self.movies.values()
                if wanted in m["title"].casefold() and (not year or m["release_date"].startswith(year))
            ]
            return 200, {"page": 1, "results": results, "total_pages": 1, "total_results": len(results)}
        if path == "/3/search/tv":
            wanted = query.get("query", "").casefold()
            results = [dict(s) for s in self.shows.values() if wanted in s["name"].casefold()]
            return 200, {"page": 1, "results": results, "total_pages": 1, "total_results": len(results)}
        if match := re.fullmatch(r"/3/movie/(\d+)", path):
            movie = self.movies.get(int(match.group(1)))
            if movie is None:
                return 404, NOT_FOUND
            body = dict(movie)
            if "credits" not in query.get("append_to_response", ""):
                body.pop("credits")
            return 200, body
        if match := re.fullmatch(r"/3/tv/(\d+)/season/(\d+)/episode/(\d+)", path):
            episode = self.episodes.get(tuple(int(g) for g in match.groups()))
            return (200, episode) if episode else (404, NOT_FOUND)
        return 404, NOT_FOUND

    def _send(
        self, request: BaseHTTPRequestHandler, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json;charset=utf-8")
            request.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the stalled case)


def use_fake_tmdb(settings_fixture, server: FakeTmdb) -> None:
    """Point the TMDb settings at the fake server, with short timeouts."""
    settings_fixture.TMDB_API_KEY = API_KEY
    settings_fixture.TMDB_BASE_URL = server.url
    settings_fixture.TMDB_CONNECT_TIMEOUT = 1.0
    settings_fixture.TMDB_READ_TIMEOUT = 0.5


def forget_tmdb_state() -> None:
    """Delete what the TMDb client keeps in Redis (cache, breaker, rate limit) under this run's prefix."""
    client = state_redis()
    prefix = settings.REDIS_KEY_PREFIX
    for pattern in (f"{prefix}:tmdb:*", f"{prefix}:breaker:tmdb:*", f"{prefix}:ratelimit:tmdb:*"):
        for key in client.scan_iter(match=pattern, count=500):
            client.delete(key)


@contextmanager
def fake_tmdb(settings_fixture) -> Iterator[FakeTmdb]:
    """A started fake server the TMDb settings point at, with no client state left over before or after."""
    server = FakeTmdb().start()
    use_fake_tmdb(settings_fixture, server)
    forget_tmdb_state()
    try:
        yield server
    finally:
        server.stop()
        forget_tmdb_state()
