"""The TMDb client against a local TMDb-shaped server: cache, breaker, shared rate limit, failures."""

import threading
from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.utils import timezone

from offload import jobs
from offload.lib import tmdb as tmdb_client
from offload.lib.breaker import CLOSED, HALF_OPEN, OPEN
from offload.lib.redis_state import state_redis
from offload.lib.tmdb import TmdbNotFound, TmdbRejected, TmdbUnavailable
from offload.models import Job, JobStatus, Library, MediaItem, MediaKind
from tests.support.cluster import wait_for
from tests.support.fake_tmdb import API_KEY, READ_TOKEN, FakeTmdb, fake_tmdb, forget_tmdb_state
from tests.support.services import free_port


@pytest.fixture
def tmdb(settings):
    with fake_tmdb(settings) as server:
        server.add_movie(
            603,
            "The Matrix",
            "1999-03-30",
            overview="A hacker learns what the world is.",
            genres=["Action", "Science Fiction"],
            cast=["Keanu Reeves", "Carrie-Anne Moss"],
            directors=["Lana Wachowski", "Lilly Wachowski"],
        )
        yield server


def max_in_any_window(times: list[float], window: float) -> int:
    """The most requests that arrived within any span of `window` seconds."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t - start < window))
    return best


def test_search_and_details_come_back_as_tmdb_sent_them(tmdb):
    results = tmdb_client.search_movie("The Matrix", 1999)
    assert [r["id"] for r in results] == [603]
    details = tmdb_client.movie_details(603)
    assert details["title"] == "The Matrix"
    assert [c["name"] for c in details["credits"]["cast"]] == ["Keanu Reeves", "Carrie-Anne Moss"]
    assert tmdb.paths() == ["/3/search/movie", "/3/movie/603"]
    assert tmdb.seen[0].query["query"] == "The Matrix"
    assert tmdb.seen[0].query["year"] == "1999"
    assert tmdb.seen[1].query["append_to_response"] == "credits"


def test_answers_are_cached_in_redis_with_their_ttls(tmdb, settings):
    tmdb_client.movie_details(603)
    tmdb_client.movie_details(603)
    tmdb_client.search_movie("The Matrix")
    tmdb_client.search_movie("The Matrix")
    assert tmdb.paths() == ["/3/movie/603", "/3/search/movie"]

    language = settings.TMDB_LANGUAGE
    details_key = tmdb_client.cache_key("/movie/603", {"append_to_response": "credits", "language": language})
    search_key = tmdb_client.cache_key(
        "/search/movie", {"query": "The Matrix", "include_adult": "false", "language": language}
    )
    assert 15 * 60 < state_redis().ttl(details_key) <= 24 * 3600
    assert 0 < state_redis().ttl(search_key) <= 15 * 60


def test_not_found_is_permanent_and_remembered(tmdb):
    with pytest.raises(TmdbNotFound):
        tmdb_client.movie_details(999)
    with pytest.raises(TmdbNotFound):
        tmdb_client.movie_details(999)
    assert tmdb.paths() == ["/3/movie/999"]
    assert tmdb_client.breaker().state() == CLOSED


def test_a_429_is_transient_and_its_retry_after_pauses_every_caller(tmdb):
    tmdb.retry_after = "30"
    tmdb.fail_next("429")
    with pytest.raises(TmdbUnavailable) as first:
        tmdb_client.movie_details(603)
    assert first.value.retry_after == 30
    assert "HTTP 429" in str(first.value)
    # Any worker asking now is told to wait, without a request reaching TMDb.
    with pytest.raises(TmdbUnavailable) as second:
        tmdb_client.search_movie("The Matrix")
    assert 25 < second.value.retry_after <= 30
    assert len(tmdb.seen) == 1


def test_retry_after_may_be_an_http_date(tmdb):
    tmdb.retry_after = format_datetime(timezone.now() + timedelta(seconds=120), usegmt=True)
    tmdb.fail_next("429")
    with pytest.raises(TmdbUnavailable) as failure:
        tmdb_client.movie_details(603)
    assert 100 < failure.value.retry_after <= 120


def test_a_server_error_is_transient(tmdb):
    tmdb.fail_next("500")
    with pytest.raises(TmdbUnavailable) as failure:
        tmdb_client.movie_details(603)
    assert failure.value.retry_after is None
    assert "HTTP 500" in str(failure.value)
    assert tmdb_client.movie_details(603)["title"] == "The Matrix"


def test_a_stalled_answer_times_out_as_transient(tmdb):
    tmdb.fail_next("stall")
    with pytest.raises(TmdbUnavailable) as failure:
        tmdb_client.movie_details(603)
    assert "did not answer" in str(failure.value)
    assert tmdb_client.movie_details(603)["title"] == "The Matrix"


def test_the_breaker_opens_after_five_failures_in_a_row_and_tries_again_after_the_cooldown(tmdb, settings):
    settings.TMDB_BREAKER_COOLDOWN = 0.5
    tmdb.fail_next("500", "500", "stall", "500", "500")
    for _ in range(5):
        with pytest.raises(TmdbUnavailable):
            tmdb_client.movie_details(603)
    assert tmdb_client.breaker().state() == OPEN
    with pytest.raises(TmdbUnavailable) as refused:
        tmdb_client.movie_details(603)
    assert "circuit open" in str(refused.value)
    assert len(tmdb.seen) == 5  # the sixth call never left the process

    wait_for(lambda: tmdb_client.breaker().state() == HALF_OPEN, timeout=5, what="the cooldown to end")
    assert tmdb_client.movie_details(603)["title"] == "The Matrix"
    assert tmdb_client.breaker().state() == CLOSED
    assert len(tmdb.seen) == 6


def test_a_success_between_failures_keeps_the_breaker_closed(tmdb):
    tmdb.fail_next("500", "500", "500", "500")
    for _ in range(4):
        with pytest.raises(TmdbUnavailable):
            tmdb_client.search_movie("The Matrix")
    tmdb_client.search_movie("The Matrix")
    tmdb.fail_next("500", "500", "500", "500")
    for _ in range(4):
        with pytest.raises(TmdbUnavailable):
            tmdb_client.movie_details(603)
    assert tmdb_client.breaker().state() == CLOSED


def test_a_refused_key_is_permanent_and_does_not_trip_the_breaker(tmdb, settings):
    settings.TMDB_API_KEY = "wrong-key"
    for _ in range(6):
        with pytest.raises(TmdbRejected) as refused:
            tmdb_client.search_movie("The Matrix")
    assert "HTTP 401" in str(refused.value)
    assert "Invalid API key" in str(refused.value)
    assert tmdb_client.breaker().state() == CLOSED


def test_the_api_key_stays_out_of_errors_and_redis_keys(tmdb, settings):
    secret = "very-secret-key-123"
    settings.TMDB_API_KEY = secret
    settings.TMDB_BASE_URL = f"http://127.0.0.1:{free_port()}/3"  # nothing listens there
    with pytest.raises(TmdbUnavailable) as failure:
        tmdb_client.search_movie("The Matrix")
    assert secret not in str(failure.value)
    assert "Could not reach TMDb" in str(failure.value)
    keys = [k.decode() for k in state_redis().scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*")]
    assert not any(secret in k for k in keys)


def test_a_v4_read_token_is_sent_as_a_bearer_header(tmdb, settings):
    settings.TMDB_API_KEY = READ_TOKEN
    assert [r["id"] for r in tmdb_client.search_movie("The Matrix")] == [603]
    assert "api_key" not in tmdb.seen[0].query
    assert tmdb.seen[0].headers["Authorization"] == f"Bearer {READ_TOKEN}"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("12", 12.0), ("0", 0.0), ("-5", 0.0), ("soon", None), ("999999", 3600.0)],
)
def test_parse_retry_after(header, seconds):
    assert tmdb_client.parse_retry_after(header) == seconds


def test_the_rate_limit_holds_for_threads_of_one_process(tmdb, settings):
    settings.TMDB_RATE_LIMIT = 3
    settings.TMDB_RATE_WINDOW = 1.0
    for n in range(8):
        tmdb.add_movie(1000 + n, f"Film {n}", "2001-01-01")

    def look_up(n: int) -> None:
        tmdb_client.movie_details(1000 + n)

    threads = [threading.Thread(target=look_up, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = tmdb.arrival_times()
    assert len(times) == 8
    # A little under the window, for the moments between Redis and the server.
    assert max_in_any_window(times, 0.8) <= 3


@pytest.mark.slow
def test_the_rate_limit_holds_across_two_worker_clusters(qcluster, alice, settings):
    server = FakeTmdb().start()
    try:
        forget_tmdb_state()
        library = Library.objects.create(name="L", path=str(settings.OFFLOAD_LIBRARY_ROOTS[0]), owner=alice)
        for n in range(8):
            server.add_movie(2000 + n, f"Picture {n}", "2002-05-01")
            item = MediaItem.objects.create(
                library=library,
                relative_path=f"Picture {n} (2002).mp4",
                kind=MediaKind.MOVIE,
                probe={"format": {}, "streams": []},
            )
            jobs.enqueue("media.enrich", target=item, user=alice)
        # Two clusters stand for two hosts; each runs two worker processes.
        env = {
            "TMDB_API_KEY": API_KEY,
            "TMDB_BASE_URL": server.url,
            "TMDB_RATE_LIMIT": "3",
            "TMDB_RATE_WINDOW": "2",
            "TMDB_RATE_MAX_WAIT": "120",
            "OFFLOAD_ENRICH_PROVIDERS": "filename,tmdb",
            "OFFLOAD_Q_WORKERS": "2",
        }
        first, second = qcluster(**env), qcluster(**env)
        wait_for(
            lambda: Job.objects.filter(kind="media.enrich", status=JobStatus.SUCCEEDED).count() == 8,
            timeout=120,
            what="eight enrichments to succeed",
            cluster=first,
        )
        assert second.proc.poll() is None
        times = server.arrival_times()
        assert len(times) == 16  # a search and a details request per item, none refused
        assert max_in_any_window(times, 1.5) <= 3
        assert set(library.items.values_list("title", flat=True)) == {f"Picture {n}" for n in range(8)}
        assert set(library.items.values_list("provenance__title", flat=True)) == {"tmdb"}
    finally:
        server.stop()
        forget_tmdb_state()
