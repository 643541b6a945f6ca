"""Hostile media: files that name other files are never read through, and scans stay in their library."""

import pytest

from offload import jobs
from offload.models import Library, MediaItem


def _segment_outside(tmp_path):
    from tests.support.media import make_video

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.ts"
    make_video(outside / "secret.mp4", seconds=2)
    import subprocess

    from offload.lib.ffmpeg import ffmpeg_binary

    subprocess.run(
        [
            ffmpeg_binary(),
            "-v",
            "error",
            "-y",
            "-i",
            str(outside / "secret.mp4"),
            "-c",
            "copy",
            "-f",
            "mpegts",
            str(secret),
        ],
        check=True,
    )
    return secret


@pytest.mark.parametrize(
    "content",
    [
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile:{secret}\n#EXT-X-ENDLIST\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{relative}\n#EXT-X-ENDLIST\n",
        "ffconcat version 1.0\nfile '{secret}'\n",
    ],
    ids=["hls-absolute", "hls-relative", "concat"],
)
def test_a_playlist_disguised_as_media_is_not_read_through(alice, library_root, tmp_path, content):
    from offload.lib import ffmpeg

    secret = _segment_outside(tmp_path)
    # The segment really is media: without the demuxer whitelist ffprobe reads 2 s of video.
    assert ffmpeg.technical_metadata(ffmpeg.probe(secret))["duration"]
    hostile = library_root / "film.mp4"
    relative = "../outside/secret.ts"
    hostile.write_text(content.format(secret=secret, relative=relative))
    with pytest.raises(ffmpeg.ProbeError):
        ffmpeg.probe(hostile)
    with pytest.raises(ffmpeg.ProbeError):
        ffmpeg.probe(hostile, quick=True)


def test_a_probe_job_on_a_disguised_playlist_fails_with_a_reason(alice, library_root, tmp_path):
    from tests.support.jobrunner import drain

    secret = _segment_outside(tmp_path)
    (library_root / "film.mp4").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile:{secret}\n#EXT-X-ENDLIST\n"
    )
    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="film.mp4")
    job, _ = jobs.enqueue("media.probe", target=item, user=alice)
    drain()
    job.refresh_from_db()
    item.refresh_from_db()
    assert job.status == "failed"
    assert "hls" in job.error
    assert item.duration is None


def test_ffmpeg_refuses_a_file_input_without_the_demuxer_whitelist(tmp_path):
    from offload.lib import ffmpeg

    with pytest.raises(ValueError, match="format_whitelist"):
        ffmpeg.run_ffmpeg(["-i", "file:/x.mp4", "-f", "null", "-"], duration=None, timeout=5)


def test_a_scan_does_not_follow_a_link_into_another_librarys_folder(alice, bob, library_root):
    from tests.support.jobrunner import drain
    from tests.support.media import make_video

    alices = library_root / "alice"
    bobs = library_root / "bob"
    make_video(alices / "private.mp4")
    make_video(bobs / "own.mp4")
    (bobs / "peek.mp4").symlink_to(alices / "private.mp4")
    (bobs / "peek-dir").symlink_to(alices)
    Library.objects.create(name="Alice's", path=str(alices), owner=alice)
    bobs_library = Library.objects.create(name="Bob's", path=str(bobs), owner=bob)
    jobs.enqueue("library.scan", target=bobs_library, user=bob)
    drain()
    assert sorted(bobs_library.items.values_list("relative_path", flat=True)) == ["own.mp4"]
