"""library.scan and media.probe on real files made with ffmpeg."""

import os
import shutil

import pytest

from offload import jobs
from offload.handlers.probe import guess_kind
from offload.handlers.scan import _reconcile
from offload.lib import ffmpeg
from offload.models import Job, JobStatus, Library, MediaItem, MediaKind, MediaStatus
from tests.support.jobrunner import drain, run_next
from tests.support.media import make_audio, make_corrupt, make_video


@pytest.fixture
def tree(library_root, tmp_path):
    """A library holding good files, a corrupt one, a text '.mp4' and links out of the roots."""
    lib = library_root / "lib"
    make_video(lib / "Movies" / "Big Test (2009).mp4", size="320x180")
    make_video(lib / "TV" / "Show" / "Show - S01E02 - Second.mp4")
    make_audio(lib / "Music" / "01 - Song.m4a", tags={"title": "Song", "artist": "Someone"})
    make_video(lib / "Unlabelled" / "clip-without-extension")
    make_corrupt(lib / "Broken.mkv", lib / "Movies" / "Big Test (2009).mp4")
    (lib / "notes.mp4").write_text("this is a text file, not a video\n")
    (lib / "movie.nfo").write_text("<movie><title>x</title></movie>")
    outside = tmp_path / "outside"
    make_video(outside / "secret.mp4")
    os.symlink(outside / "secret.mp4", lib / "linked-secret.mp4")
    os.symlink(outside, lib / "linked-dir")
    os.symlink(lib / "Movies", lib / "Movies again")  # inside the roots, but already walked
    return lib


def scan(user, lib_path):
    library = Library.objects.create(name="Lib", path=str(lib_path), owner=user)
    job, _ = jobs.enqueue("library.scan", target=library, user=user)
    return library, job


def item(library, relative_path):
    return MediaItem.objects.get(library=library, relative_path=relative_path)


def test_scan_progress_counts_a_new_file_once_its_work_is_done(alice, tree):
    library, job = scan(alice, tree)

    class Recorder:
        """Stands in for the worker's JobRun: notes each progress report and the items made by then."""

        def __init__(self) -> None:
            self.reports: list[tuple[float, int]] = []

        def progress(self, percent, *, force=False, partial_result=None) -> None:
            self.reports.append((percent, MediaItem.objects.count()))

    run = Recorder()
    _reconcile(job, run, library, library.root.resolve())
    assert library.items.count() == 6
    percents = [percent for percent, _ in run.reports]
    assert percents == sorted(percents)
    # Every file on a fresh tree is new: before the first item exists, hardly any work is done.
    assert max(percent for percent, made in run.reports if made == 0) < 50
    assert max(percents) < 100  # the job's success reports 100


def test_scan_then_probe_a_mixed_tree(alice, tree):
    library, scan_job = scan(alice, tree)
    drain()
    scan_job.refresh_from_db()
    assert scan_job.status == JobStatus.SUCCEEDED, scan_job.error
    assert scan_job.progress == 100.0
    paths = set(library.items.values_list("relative_path", flat=True))
    assert paths == {
        "Movies/Big Test (2009).mp4",
        "TV/Show/Show - S01E02 - Second.mp4",
        "Music/01 - Song.m4a",
        "Unlabelled/clip-without-extension",
        "Broken.mkv",
        "notes.mp4",
    }
    assert scan_job.result["created"] == 6
    assert scan_job.result["skipped"] == 1  # movie.nfo

    movie = item(library, "Movies/Big Test (2009).mp4")
    assert movie.status == MediaStatus.READY
    assert movie.kind == MediaKind.MOVIE
    assert (movie.width, movie.height) == (320, 180)
    assert movie.video_codec == "h264" and movie.audio_codec == "aac"
    assert movie.duration == pytest.approx(1.0, abs=0.2)
    assert movie.probe["format"]["format_name"].startswith("mov")
    assert item(library, "TV/Show/Show - S01E02 - Second.mp4").kind == MediaKind.EPISODE
    song = item(library, "Music/01 - Song.m4a")
    assert song.kind == MediaKind.TRACK and song.audio_channels == 1
    assert item(library, "Unlabelled/clip-without-extension").status == MediaStatus.READY

    for broken in ("Broken.mkv", "notes.mp4"):
        bad = item(library, broken)
        assert bad.status == MediaStatus.CORRUPT
        assert bad.status_reason.startswith("Not a playable media file")
        probe_job = Job.objects.get(kind="media.probe", target_id=bad.pk)
        assert probe_job.status == JobStatus.FAILED
        assert probe_job.error == bad.status_reason
        assert probe_job.attempts == 1  # a corrupt file is not retried


def test_a_file_deleted_between_scan_and_probe_fails_its_probe_and_is_marked_missing(alice, tree):
    library, _ = scan(alice, tree)
    assert run_next()  # the scan alone; its probes stay queued
    (tree / "Music" / "01 - Song.m4a").unlink()
    drain()
    song = item(library, "Music/01 - Song.m4a")
    assert song.status == MediaStatus.MISSING
    probe_job = Job.objects.get(kind="media.probe", target_id=song.pk)
    assert probe_job.status == JobStatus.FAILED
    assert probe_job.error == "The file Music/01 - Song.m4a no longer exists."


def test_rescan_updates_changed_removes_vanished_and_follows_moves(alice, library_root):
    lib = library_root / "lib"
    make_video(lib / "a.mp4", seconds=1)
    make_video(lib / "b.mp4", seconds=2)
    make_video(lib / "c.mp4", seconds=1, size="320x180")
    library, _ = scan(alice, lib)
    drain()
    kept_id = item(library, "c.mp4").pk

    make_video(lib / "a.mp4", seconds=3)  # changed content
    (lib / "b.mp4").unlink()  # vanished
    shutil.move(lib / "c.mp4", lib / "renamed.mp4")  # moved
    job, _ = jobs.enqueue("library.scan", target=library, user=alice)
    drain()
    job.refresh_from_db()
    assert job.result["changed"] == 1
    assert job.result["removed"] == 1
    assert job.result["moved"] == 1
    assert set(library.items.values_list("relative_path", flat=True)) == {"a.mp4", "renamed.mp4"}
    assert item(library, "renamed.mp4").pk == kept_id
    assert item(library, "a.mp4").duration == pytest.approx(3.0, abs=0.2)

    third, _ = jobs.enqueue("library.scan", target=library, user=alice)
    drain()
    third.refresh_from_db()
    assert third.result["unchanged"] == 2
    assert third.result["changed"] == third.result["created"] == 0


def test_scan_of_a_library_whose_folder_vanished_fails_readably(alice, library_root):
    lib = library_root / "gone"
    lib.mkdir()
    _, job = scan(alice, lib)
    lib.rmdir()
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "does not exist" in job.error


def test_file_names_cannot_inject_ffmpeg_options(alice, library_root):
    lib = library_root / "lib"
    make_video(lib / "-y.mp4")
    make_video(lib / "concat:evil.mp4")
    library, _ = scan(alice, lib)
    drain()
    assert set(library.items.values_list("status", flat=True)) == {MediaStatus.READY}


def test_probe_command_is_an_argument_list_with_a_pinned_protocol(tmp_path):
    args = ffmpeg.probe_command(tmp_path / "-i x.mp4")
    assert isinstance(args, list)
    assert args[-1] == f"file:{tmp_path.resolve()}/-i x.mp4"


def test_technical_metadata_reads_streams_and_skips_cover_art():
    data = {
        "format": {"format_name": "matroska,webm", "duration": "12.5", "bit_rate": "800000"},
        "streams": [
            {
                "codec_type": "video",
                "codec_name": "mjpeg",
                "width": 600,
                "height": 600,
                "disposition": {"attached_pic": 1},
            },
            {"codec_type": "video", "codec_name": "hevc", "width": 1920, "height": 1080, "tags": {"language": "und"}},
            {"codec_type": "audio", "codec_name": "opus", "channels": 6, "tags": {"language": "eng"}},
            {"codec_type": "audio", "codec_name": "aac", "channels": 2, "tags": {"language": "fra"}},
        ],
    }
    meta = ffmpeg.technical_metadata(data)
    assert meta == {
        "container": "matroska,webm",
        "duration": 12.5,
        "width": 1920,
        "height": 1080,
        "bitrate": 800000,
        "video_codec": "hevc",
        "audio_codec": "opus",
        "audio_channels": 6,
        "languages": ["eng", "fra"],
    }


@pytest.mark.parametrize(
    ("path", "technical", "kind"),
    [
        ("Show/Show.S02E11.mkv", {"video_codec": "h264", "width": 1}, MediaKind.EPISODE),
        ("Show/show 3x04.mkv", {"video_codec": "h264", "width": 1}, MediaKind.EPISODE),
        ("Film (2001).mkv", {"video_codec": "h264", "width": 1}, MediaKind.MOVIE),
        ("song.flac", {"audio_codec": "flac"}, MediaKind.TRACK),
        ("weird.bin", {}, MediaKind.OTHER),
    ],
)
def test_guess_kind(path, technical, kind):
    assert guess_kind(path, technical) == kind


def test_a_scan_waits_while_another_scan_of_the_library_holds_its_lock(alice, library_root):
    from offload.lib.locks import RedisLock

    lib = library_root / "lib"
    make_video(lib / "a.mp4")
    library, job = scan(alice, lib)
    held = RedisLock(f"scan:{library.pk}")
    assert held.acquire()
    try:
        drain()
        job.refresh_from_db()
        assert job.status == JobStatus.QUEUED
        assert job.attempts == 0
        assert "Another scan of library" in job.error
        assert not library.items.exists()
    finally:
        held.release()
