"""The local enrichment providers (file name, embedded tags, NFO sidecars) on generated files, and the merge."""

import os
import subprocess

import pytest

from offload.handlers.enrich.merge import merge, normalize
from offload.handlers.enrich.providers import Context, ProviderError, filename, nfo, tags
from offload.lib import ffmpeg
from offload.models import Library, MediaItem, MediaKind
from tests.support.enrich_files import HOSTILE, MOVIE_NFO, retag, write_hostile
from tests.support.media import make_audio, make_video

# --- helpers -----------------------------------------------------------------


@pytest.fixture
def library(library_root, alice):
    return Library.objects.create(name="Lib", path=str(library_root), owner=alice)


def make_item(library: Library, relative_path: str, kind: str = MediaKind.MOVIE, *, probe: bool = False) -> MediaItem:
    item = MediaItem.objects.create(library=library, relative_path=relative_path, kind=kind)
    if probe:
        item.probe = ffmpeg.probe(item.absolute_path)
        item.save(update_fields=["probe"])
    return item


def context_for(item: MediaItem) -> Context:
    return Context(item=item, path=item.library.root / item.relative_path, library_root=item.library.root)


# --- file name ---------------------------------------------------------------


def test_file_name_gives_a_movies_title_and_year(library, library_root):
    make_video(library_root / "Movies" / "Big Test (2009).mp4")
    proposal = filename.provide(context_for(make_item(library, "Movies/Big Test (2009).mp4")))
    assert proposal.fields == {"title": "Big Test", "year": 2009}


def test_file_name_gives_series_season_episode_and_episode_title(library, library_root):
    make_video(library_root / "TV" / "Show" / "Show - S01E02 - Second.mp4")
    item = make_item(library, "TV/Show/Show - S01E02 - Second.mp4", MediaKind.EPISODE)
    proposal = filename.provide(context_for(item))
    assert proposal.fields == {"series_title": "Show", "season": 1, "episode": 2, "title": "Second"}


def test_a_year_in_an_episodes_name_dates_the_series_not_the_episode(library):
    item = make_item(library, "Doctor.Who.2005.S01E01.mkv", MediaKind.EPISODE)
    proposal = filename.provide(context_for(item))
    assert proposal.fields == {"series_title": "Doctor Who", "season": 1, "episode": 1, "title": "Doctor Who S01E01"}
    assert proposal.hints == {"series_year": 2005}


def test_a_music_files_name_is_its_title_without_the_track_number(library, library_root):
    make_audio(library_root / "Music" / "01 - Song.m4a")
    proposal = filename.provide(context_for(make_item(library, "Music/01 - Song.m4a", MediaKind.TRACK)))
    assert proposal.fields == {"title": "Song"}


@pytest.mark.parametrize(
    ("path", "kind"),
    [("Show/Season 2/Show.S02E05.mkv", MediaKind.EPISODE), ("Film (2001).mkv", MediaKind.MOVIE), ("weird.bin", None)],
)
def test_file_name_guesses_a_kind_only_from_clear_evidence(library, path, kind):
    proposal = filename.provide(context_for(make_item(library, path, MediaKind.OTHER)))
    assert proposal.kind == kind


# --- embedded tags -----------------------------------------------------------


def test_tags_of_an_m4a_track(library, library_root):
    music_tags = {
        "title": "Blue Song",
        "artist": "The Players;Guest Singer",
        "album": "Colours",
        "date": "2011-03-02",
        "genre": "Jazz/Soul",
        "track": "3/12",
    }
    make_audio(library_root / "Music" / "03 - blue.m4a", tags=music_tags)
    item = make_item(library, "Music/03 - blue.m4a", MediaKind.TRACK, probe=True)
    proposal = tags.provide(context_for(item))
    assert proposal.fields == {
        "title": "Blue Song",
        "people": ["The Players", "Guest Singer"],
        "series_title": "Colours",
        "episode": 3,
        "year": 2011,
        "genres": ["Jazz", "Soul"],
    }
    assert proposal.inputs["album"] == "Colours"


def test_tags_of_an_opus_file_are_read_from_its_audio_stream(library, library_root):
    path = library_root / "Music" / "song.opus"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(ffmpeg.ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=0.5"),
            *("-metadata", "title=Ogg Song", "-metadata", "artist=Singer", "-c:a", "libopus", str(path)),
        ],
        check=True,
        capture_output=True,
    )
    item = make_item(library, "Music/song.opus", MediaKind.TRACK, probe=True)
    assert tags.provide(context_for(item)).fields == {"title": "Ogg Song", "people": ["Singer"]}


def test_a_videos_stream_titles_are_not_its_title(library, library_root):
    path = make_video(library_root / "Films" / "clip.mp4")
    retag(path, "title=The Real Title", "genre=Drama", "date=1987", "-metadata:s:a:0 title=Stereo")
    item = make_item(library, "Films/clip.mp4", MediaKind.MOVIE, probe=True)
    assert tags.provide(context_for(item)).fields == {"title": "The Real Title", "year": 1987, "genres": ["Drama"]}


def test_tags_are_probed_from_the_file_when_the_item_never_was(library, library_root):
    make_audio(library_root / "a.m4a", tags={"title": "Unprobed"})
    item = make_item(library, "a.m4a", MediaKind.TRACK)
    assert item.probe is None
    assert tags.provide(context_for(item)).fields == {"title": "Unprobed"}


def test_a_file_without_tags_proposes_nothing(library, library_root):
    make_video(library_root / "plain.mp4")
    proposal = tags.provide(context_for(make_item(library, "plain.mp4", probe=True)))
    assert proposal.fields == {}
    assert proposal.status == "no tags"


def test_tags_of_an_unreadable_unprobed_file_fail_the_provider_readably(library, library_root):
    (library_root / "notes.mp4").write_text("not media\n")
    with pytest.raises(ProviderError, match="ffprobe could not read"):
        tags.provide(context_for(make_item(library, "notes.mp4")))


# --- NFO sidecars ------------------------------------------------------------


def test_movie_nfo_gives_title_original_title_year_plot_genres_actors_and_directors(library, library_root):
    make_video(library_root / "Heat (1995)" / "heat.mp4")
    (library_root / "Heat (1995)" / "movie.nfo").write_text(MOVIE_NFO)
    proposal = nfo.provide(context_for(make_item(library, "Heat (1995)/heat.mp4")))
    assert proposal.fields == {
        "title": "Heat",
        "original_title": "Heat (Original)",
        "year": 1995,
        "overview": "A group of professional bank robbers start to feel the heat.",
        "genres": ["Crime", "Thriller"],
        "people": ["Michael Mann", "Al Pacino", "Robert De Niro"],
    }
    assert proposal.hints == {"tmdb_movie_id": 949}
    assert proposal.detail == {"files": ["Heat (1995)/movie.nfo"]}


def test_the_files_own_nfo_wins_over_movie_nfo(library, library_root):
    folder = library_root / "Films"
    make_video(folder / "one.mp4")
    (folder / "movie.nfo").write_text(MOVIE_NFO)
    (folder / "one.nfo").write_text("<movie><title>One</title><year>2001</year></movie>")
    proposal = nfo.provide(context_for(make_item(library, "Films/one.mp4")))
    assert proposal.fields["title"] == "One"
    assert proposal.fields["year"] == 2001
    assert proposal.fields["overview"].startswith("A group")  # only movie.nfo has a plot
    assert [name for name, _ in proposal.inputs] == ["Films/movie.nfo", "Films/one.nfo"]


def test_tvshow_nfo_and_episode_details_combine(library, library_root):
    show = library_root / "The Show"
    make_video(show / "Season 1" / "The Show S01E01.mp4")
    (show / "tvshow.nfo").write_text(
        "<tvshow><title>The Show</title><genre>Comedy</genre><premiered>2008-01-20</premiered>"
        '<uniqueid type="tmdb">1396</uniqueid><actor><name>Lead Actor</name></actor></tvshow>'
    )
    (show / "Season 1" / "The Show S01E01.nfo").write_text(
        "<episodedetails><title>Pilot</title><season>1</season><episode>1</episode>"
        "<plot>It begins.</plot><aired>2008-01-20</aired><director>Some Director</director></episodedetails>"
    )
    item = make_item(library, "The Show/Season 1/The Show S01E01.mp4", MediaKind.EPISODE)
    proposal = nfo.provide(context_for(item))
    assert proposal.fields["series_title"] == "The Show"
    assert proposal.fields["genres"] == ["Comedy"]
    assert proposal.fields["title"] == "Pilot"
    assert (proposal.fields["season"], proposal.fields["episode"]) == (1, 1)
    assert proposal.fields["overview"] == "It begins."
    assert proposal.fields["year"] == 2008
    assert proposal.fields["people"] == ["Some Director"]
    assert proposal.hints == {"tmdb_tv_id": 1396, "series_year": 2008}


def test_an_nfo_with_a_trailing_link_is_read(library, library_root):
    make_video(library_root / "m" / "film.mp4")
    (library_root / "m" / "film.nfo").write_text(
        "<movie><title>Linked</title></movie>\nhttps://www.themoviedb.org/movie/550-fight-club\n"
    )
    proposal = nfo.provide(context_for(make_item(library, "m/film.mp4")))
    assert proposal.fields["title"] == "Linked"
    assert proposal.hints == {"tmdb_movie_id": 550}


def test_an_nfo_holding_only_a_tmdb_link_gives_a_hint(library, library_root):
    make_video(library_root / "m" / "film.mp4")
    (library_root / "m" / "film.nfo").write_text("https://www.themoviedb.org/movie/550\n")
    proposal = nfo.provide(context_for(make_item(library, "m/film.mp4")))
    assert proposal.fields == {}
    assert proposal.hints == {"tmdb_movie_id": 550}


def test_no_nfo_proposes_nothing(library, library_root):
    make_video(library_root / "bare.mp4")
    proposal = nfo.provide(context_for(make_item(library, "bare.mp4")))
    assert (proposal.fields, proposal.status) == ({}, "no nfo")


def test_an_nfo_linking_out_of_the_library_roots_is_not_read(library, library_root, tmp_path):
    outside = tmp_path / "outside.nfo"
    outside.write_text("<movie><title>Secret</title></movie>")
    make_video(library_root / "m" / "film.mp4")
    os.symlink(outside, library_root / "m" / "movie.nfo")
    proposal = nfo.provide(context_for(make_item(library, "m/film.mp4")))
    assert (proposal.fields, proposal.status) == ({}, "no nfo")


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_nfo_fails_the_provider_with_a_readable_reason(library, library_root, case):
    make_video(library_root / "h" / "film.mp4")
    write_hostile(library_root / "h" / "film.nfo", case)
    with pytest.raises(ProviderError) as failure:
        nfo.provide(context_for(make_item(library, "h/film.mp4")))
    assert str(failure.value).startswith("h/film.nfo ")
    assert HOSTILE[case] in str(failure.value)
    assert "root:" not in str(failure.value)  # nothing of /etc/passwd leaks into the reason


def test_a_broken_nfo_fails_the_provider_readably(library, library_root):
    make_video(library_root / "b" / "film.mp4")
    (library_root / "b" / "film.nfo").write_text("<movie><title>Unclosed</movie>")
    with pytest.raises(ProviderError, match=r"b/film.nfo is not well-formed XML \(mismatched tag"):
        nfo.provide(context_for(make_item(library, "b/film.mp4")))


def test_an_nfo_with_an_unexpected_root_fails_readably(library, library_root):
    make_video(library_root / "b" / "film.mp4")
    (library_root / "b" / "film.nfo").write_text("<html><body>hi</body></html>")
    with pytest.raises(ProviderError, match="has a <html> root"):
        nfo.provide(context_for(make_item(library, "b/film.mp4")))


# --- merging -----------------------------------------------------------------


def test_merge_later_providers_win_and_record_provenance():
    result = merge(
        {"title": "", "year": None},
        {},
        [],
        [("filename", {"title": "big test", "year": 2009}), ("nfo", {"title": "Big Test"})],
    )
    assert result.changes == {"title": "Big Test", "year": 2009}
    assert result.provenance == {"title": "nfo", "year": "filename"}


def test_merge_empty_values_never_erase():
    result = merge(
        {"title": "Kept", "genres": ["Drama"]}, {"title": "nfo"}, [], [("tags", {"title": "", "genres": []})]
    )
    assert result.changes == {}
    assert result.provenance == {"title": "nfo"}


def test_merge_never_writes_a_locked_field():
    result = merge(
        {"title": "Mine", "year": None},
        {"title": "user"},
        ["title"],
        [("nfo", {"title": "Theirs", "year": 1999})],
    )
    assert result.changes == {"year": 1999}
    assert result.provenance == {"title": "user", "year": "nfo"}
    assert result.kept_locked == ["title"]


def test_merge_holds_fields_of_a_provider_that_could_not_answer():
    current = {"title": "From TMDb", "overview": "From NFO"}
    provenance = {"title": "tmdb", "overview": "nfo"}
    proposals = [("filename", {"title": "from file"}), ("nfo", None), ("tmdb", None)]
    assert merge(current, provenance, [], proposals).changes == {}
    # A provider later in the order than the silent one still wins, as it would have anyway.
    proposals = [("nfo", None), ("tmdb", {"overview": "New overview"})]
    assert merge(current, provenance, [], proposals).changes == {"overview": "New overview"}


def test_merge_of_the_same_proposals_twice_changes_nothing():
    proposals = [("filename", {"title": "X", "year": 2000}), ("tags", {"genres": ["A", "a", " B "]})]
    first = merge({}, {}, [], proposals)
    assert first.changes == {"title": "X", "year": 2000, "genres": ["A", "B"]}
    second = merge(first.changes, first.provenance, [], proposals)
    assert second.changes == {}
    assert second.provenance == first.provenance


@pytest.mark.parametrize(
    ("field", "value", "cleaned"),
    [
        ("title", "  Two   words ", "Two words"),
        ("title", "x" * 600, "x" * 500),
        ("title", "   ", None),
        ("year", "1999", 1999),
        ("year", 99999, None),
        ("season", -1, None),
        ("genres", "Drama", ["Drama"]),
        ("people", ["A", None, "", "a", "B"], ["A", "B"]),
        ("genres", {"not": "a list"}, None),
        ("overview", "  line one\n\nline two  ", "line one\n\nline two"),
    ],
)
def test_normalize_fits_values_to_their_fields(field, value, cleaned):
    assert normalize(field, value) == cleaned


def test_a_fifo_named_like_an_nfo_is_not_opened(library, library_root):
    make_video(library_root / "f" / "film.mp4")
    os.mkfifo(library_root / "f" / "movie.nfo")  # opening it for reading would wait for a writer
    proposal = nfo.provide(context_for(make_item(library, "f/film.mp4")))
    assert (proposal.fields, proposal.status) == ({}, "no nfo")
