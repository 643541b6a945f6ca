"""The media.enrich job: providers in order, provenance, locks, idempotence, TMDb outcomes."""

import pytest
from django.db.models.signals import post_save

from offload import actions
from offload.jobs import runner
from offload.lib import tmdb as tmdb_client
from offload.lib.breaker import OPEN
from offload.models import Job, JobStatus, Library, MediaItem, MediaKind
from tests.support.cluster import wait_for
from tests.support.enrich_files import HOSTILE, MOVIE_NFO, retag, write_hostile
from tests.support.fake_tmdb import fake_tmdb
from tests.support.jobrunner import drain
from tests.support.media import make_video

HEAT_NFO = """<movie>
  <title>Heat: Director's Cut</title>
  <originaltitle>Heat</originaltitle>
  <plot>A group of professional bank robbers start to feel the heat.</plot>
  <actor><name>Al Pacino</name></actor>
  <director>Michael Mann</director>
</movie>
"""


@pytest.fixture(autouse=True)
def _tmdb_off(settings):
    """Local providers only, unless a test asks for the fake TMDb."""
    settings.TMDB_API_KEY = ""


@pytest.fixture
def library(library_root, alice):
    return Library.objects.create(name="Lib", path=str(library_root / "lib"), owner=alice)


@pytest.fixture
def heat(library, library_root):
    """A video with an embedded genre and a movie.nfo beside it."""
    folder = library_root / "lib" / "Heat (1995)"
    retag(make_video(folder / "Heat (1995).mp4"), "title=heat.1995.x264", "genre=Crime")
    (folder / "movie.nfo").write_text(HEAT_NFO)
    return item_for(library, "Heat (1995)/Heat (1995).mp4", MediaKind.MOVIE, probe_file=True)


@pytest.fixture
def tmdb(settings):
    with fake_tmdb(settings) as server:
        server.add_movie(
            603,
            "The Matrix",
            "1999-03-30",
            original_title="The Matrix",
            overview="A hacker learns what the world is.",
            genres=["Action", "Science Fiction"],
            cast=["Keanu Reeves", "Carrie-Anne Moss"],
            directors=["Lana Wachowski"],
        )
        yield server


def item_for(library: Library, relative_path: str, kind: str, *, probe_file: bool = False) -> MediaItem:
    """An item as a probe leaves it; without a file, an empty probe."""
    from offload.lib import ffmpeg

    probe = ffmpeg.probe(library.root / relative_path) if probe_file else {"format": {}, "streams": []}
    return MediaItem.objects.create(library=library, relative_path=relative_path, kind=kind, probe=probe)


def enrich(user, item: MediaItem) -> Job:
    job, _ = actions.request_job(user, "media.enrich", item)
    drain()
    job.refresh_from_db()
    item.refresh_from_db()
    return job


# --- local providers ---------------------------------------------------------


def test_enrich_fills_fields_from_each_provider_and_records_who_set_them(alice, alice_api, heat):
    job = enrich(alice, heat)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert heat.title == "Heat: Director's Cut"
    assert heat.original_title == "Heat"
    assert heat.year == 1995
    assert heat.genres == ["Crime"]
    assert heat.people == ["Michael Mann", "Al Pacino"]
    assert heat.provenance == {
        "title": "nfo",
        "original_title": "nfo",
        "overview": "nfo",
        "people": "nfo",
        "year": "filename",
        "genres": "tags",
    }
    assert heat.enrichment_digest and heat.enriched_at
    assert heat.kind == MediaKind.MOVIE
    providers = job.result["providers"]
    assert providers["nfo"]["files"] == ["Heat (1995)/movie.nfo"]
    assert providers["tmdb"]["status"] == "disabled"
    assert job.result["changed"] is True

    detail = alice_api.get(f"/api/v1/media/{heat.pk}/").json()
    assert detail["provenance"] == heat.provenance
    assert detail["metadata"]["title"] == "Heat: Director's Cut"


def test_the_provider_order_is_configurable(alice, heat, settings):
    settings.OFFLOAD_ENRICH_PROVIDERS = ["nfo", "tags", "filename"]
    enrich(alice, heat)
    assert heat.title == "Heat"
    assert heat.provenance["title"] == "filename"
    assert heat.overview.startswith("A group")


def test_an_unknown_provider_fails_the_job_readably(alice, heat, settings):
    settings.OFFLOAD_ENRICH_PROVIDERS = ["filename", "imdb"]
    job = enrich(alice, heat)
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("Unknown enrichment provider(s) 'imdb' in OFFLOAD_ENRICH_PROVIDERS")
    assert job.attempts == 1


def test_unchanged_inputs_write_nothing_and_trigger_no_search_update(alice, heat):
    enrich(alice, heat)
    before = MediaItem.objects.values("updated_at", "enriched_at", "enrichment_digest").get(pk=heat.pk)
    saved = []

    def count_saves(sender, instance, **kwargs):
        saved.append(instance.pk)

    post_save.connect(count_saves, sender=MediaItem, dispatch_uid="test-enrich-saves")
    try:
        again = enrich(alice, heat)
    finally:
        post_save.disconnect(dispatch_uid="test-enrich-saves", sender=MediaItem)
    assert again.status == JobStatus.SUCCEEDED
    assert again.result["changed"] is False
    assert saved == []
    assert MediaItem.objects.values("updated_at", "enriched_at", "enrichment_digest").get(pk=heat.pk) == before


def test_a_changed_sidecar_is_merged_again(alice, heat, library_root):
    enrich(alice, heat)
    (library_root / "lib" / "Heat (1995)" / "movie.nfo").write_text(HEAT_NFO.replace("Director's Cut", "Remastered"))
    job = enrich(alice, heat)
    assert job.result["changed"] is True
    assert job.result["fields"] == ["title"]
    assert heat.title == "Heat: Remastered"


def test_locked_title_survives_re_enrichment(alice, alice_api, heat, library_root):
    enrich(alice, heat)
    response = alice_api.patch(f"/api/v1/media/{heat.pk}/", {"title": "My Heat"}, format="json")
    assert response.status_code == 200
    assert response.json()["provenance"]["title"] == "user"
    nfo = library_root / "lib" / "Heat (1995)" / "movie.nfo"
    nfo.write_text(HEAT_NFO.replace("Director's Cut", "Remastered").replace("A group", "A crew"))

    job = enrich(alice, heat)
    assert job.status == JobStatus.SUCCEEDED
    assert heat.title == "My Heat"
    assert heat.locked_fields == ["title"]
    assert heat.provenance["title"] == "user"
    assert heat.overview.startswith("A crew")
    assert job.result["kept_locked"] == ["title"]


def test_an_unlocked_field_is_filled_again_by_the_next_enrichment(alice, alice_api, heat):
    enrich(alice, heat)
    alice_api.patch(f"/api/v1/media/{heat.pk}/", {"title": "My Heat"}, format="json")
    enrich(alice, heat)
    heat.refresh_from_db()
    assert heat.title == "My Heat"

    actions.unlock_fields(alice, heat, ["title"])
    job = enrich(alice, heat)
    assert job.result["changed"] is True
    assert heat.title == "Heat: Director's Cut"
    assert heat.provenance["title"] == "nfo"
    assert heat.locked_fields == []


def test_unlocking_a_field_that_is_not_descriptive_is_refused(alice, heat):
    with pytest.raises(ValueError, match="Not descriptive fields: status"):
        actions.unlock_fields(alice, heat, ["status"])


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_nfo_fails_only_that_provider(alice, library, library_root, case):
    make_video(library_root / "lib" / "Hostile (2010).mp4")
    write_hostile(library_root / "lib" / "Hostile (2010).nfo", case)
    item = item_for(library, "Hostile (2010).mp4", MediaKind.MOVIE, probe_file=True)
    job = enrich(alice, item)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 1
    nfo = job.result["providers"]["nfo"]
    assert nfo["status"] == "error"
    assert HOSTILE[case] in nfo["error"]
    assert job.result["providers"]["filename"]["status"] == "ok"
    assert (item.title, item.year) == ("Hostile", 2010)
    assert item.provenance == {"title": "filename", "year": "filename"}


def test_an_items_kind_left_other_by_the_probe_is_taken_from_its_file_name(alice, library):
    item = item_for(library, "Show/Season 1/Show.S01E04.mkv", MediaKind.OTHER)
    enrich(alice, item)
    assert item.kind == MediaKind.EPISODE
    assert (item.series_title, item.season, item.episode) == ("Show", 1, 4)


def test_a_kind_set_by_the_probe_is_kept(alice, library):
    item = item_for(library, "Clips/Show.S01E04.mkv", MediaKind.MOVIE)
    enrich(alice, item)
    assert item.kind == MediaKind.MOVIE


def test_enriching_a_deleted_item_fails_readably(alice, library):
    item = item_for(library, "gone.mkv", MediaKind.MOVIE)
    job, _ = actions.request_job(alice, "media.enrich", item)
    item.delete()
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "The media item no longer exists."


# --- API ---------------------------------------------------------------------


def test_post_enrich_answers_202_then_the_active_job_and_404_to_others(alice_api, bob_api, heat):
    first = alice_api.post(f"/api/v1/media/{heat.pk}/enrich/")
    assert first.status_code == 202
    assert first.json()["kind"] == "media.enrich"
    assert first["Location"] == first.json()["url"]
    again = alice_api.post(f"/api/v1/media/{heat.pk}/enrich/")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert bob_api.post(f"/api/v1/media/{heat.pk}/enrich/").status_code == 404
    drain()
    assert Job.objects.get(pk=first.json()["id"]).status == JobStatus.SUCCEEDED


# --- TMDb --------------------------------------------------------------------


def test_tmdb_details_fill_a_movie_after_the_local_providers(alice, library, tmdb):
    item = item_for(library, "The.Matrix.1999.1080p.BluRay.x264.mkv", MediaKind.MOVIE)
    job = enrich(alice, item)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert item.title == "The Matrix"
    assert item.overview == "A hacker learns what the world is."
    assert item.genres == ["Action", "Science Fiction"]
    assert item.people == ["Lana Wachowski", "Keanu Reeves", "Carrie-Anne Moss"]
    assert item.provenance["overview"] == item.provenance["title"] == "tmdb"
    assert job.result["providers"]["tmdb"]["match"] == {"type": "movie", "id": 603, "title": "The Matrix"}
    assert tmdb.paths() == ["/3/search/movie", "/3/movie/603"]
    assert tmdb.seen[0].query["query"] == "The Matrix"
    assert tmdb.seen[0].query["year"] == "1999"


def test_tmdb_episode_details_fill_an_episode(alice, library, tmdb):
    tmdb.add_episode(
        1396,
        "Breaking Bad",
        2,
        3,
        "Bit by a Dead Bee",
        air_date="2009-03-22",
        overview="Walt and Jesse cover their tracks.",
        directors=["Terry McDonough"],
        guest_stars=["Guest Star"],
    )
    item = item_for(library, "Breaking Bad/Season 2/Breaking.Bad.S02E03.720p.mkv", MediaKind.EPISODE)
    job = enrich(alice, item)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (item.series_title, item.season, item.episode) == ("Breaking Bad", 2, 3)
    assert item.title == "Bit by a Dead Bee"
    assert item.year == 2009
    assert item.people == ["Terry McDonough", "Guest Star"]
    assert tmdb.paths() == ["/3/search/tv", "/3/tv/1396/season/2/episode/3"]


def test_an_nfo_tmdb_id_skips_the_search(alice, library, library_root, tmdb):
    make_video(library_root / "lib" / "m" / "film.mp4")
    (library_root / "lib" / "m" / "movie.nfo").write_text(
        MOVIE_NFO.replace('type="tmdb" default="true">949', 'type="tmdb">603')
    )
    item = item_for(library, "m/film.mp4", MediaKind.MOVIE, probe_file=True)
    enrich(alice, item)
    assert tmdb.paths() == ["/3/movie/603"]
    assert item.title == "The Matrix"


def test_no_match_on_tmdb_is_a_success_without_retry(alice, library, tmdb):
    item = item_for(library, "Unheard Of (1990).mkv", MediaKind.MOVIE)
    job = enrich(alice, item)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 1
    assert job.result["providers"]["tmdb"]["status"] == "no match"
    assert (item.title, item.year) == ("Unheard Of", 1990)
    assert tmdb.paths() == ["/3/search/movie"]


def test_a_refused_tmdb_key_fails_only_the_tmdb_provider(alice, library, tmdb, settings):
    settings.TMDB_API_KEY = "not-the-key"
    item = item_for(library, "The Matrix (1999).mkv", MediaKind.MOVIE)
    job = enrich(alice, item)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result["providers"]["tmdb"]["status"] == "error"
    assert "HTTP 401" in job.result["providers"]["tmdb"]["error"]
    assert item.provenance["title"] == "filename"


def test_tmdb_429_500_and_a_stalled_answer_are_retried_in_turn_then_succeed(alice, library, tmdb, settings):
    settings.OFFLOAD_JOB_MAX_ATTEMPTS = 4
    tmdb.retry_after = "1"
    tmdb.fail_next("429", "500", "stall")
    item = item_for(library, "The.Matrix.1999.mkv", MediaKind.MOVIE)
    job = enrich(alice, item)

    # Attempt 1 met the 429: the job waits for another attempt; local fields are kept meanwhile.
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert "HTTP 429" in job.error
    assert item.title == "The Matrix"
    assert item.provenance == {"title": "filename", "year": "filename"}
    assert item.enrichment_digest == ""  # incomplete: the next attempt must merge again
    # Retry-After paused every caller; the spine's backoff delivers the next attempt.
    assert tmdb_client.breaker().state() == OPEN
    wait_for(lambda: tmdb_client.breaker().state() != OPEN, timeout=10, what="the Retry-After pause to end")

    runner.execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 2)
    assert "HTTP 500" in job.error

    runner.execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 3)
    assert "did not answer" in job.error

    runner.execute(job.pk)
    job.refresh_from_db()
    item.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 4
    assert item.provenance["overview"] == "tmdb"
    assert item.enrichment_digest
    assert tmdb.paths() == ["/3/search/movie"] * 4 + ["/3/movie/603"]


def test_a_job_whose_tmdb_stays_down_fails_after_its_attempts(alice, library, tmdb, settings):
    settings.OFFLOAD_JOB_MAX_ATTEMPTS = 2
    tmdb.fail_next("500", "500")
    item = item_for(library, "The.Matrix.1999.mkv", MediaKind.MOVIE)
    job = enrich(alice, item)
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "TMDb failed (HTTP 500). (after 2 attempts)"
    item.refresh_from_db()
    assert item.title == "The Matrix"  # the local providers' work was kept
