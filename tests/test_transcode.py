"""media.transcode and media.thumbnail with real ffmpeg on small generated clips."""

import os
import subprocess

import pytest
from django.urls import reverse

from offload import jobs
from offload.lib import ffmpeg
from offload.lib.locks import RedisLock
from offload.models import Job, JobEvent, JobStatus, Library, MediaItem, Rendition
from offload.profiles import PROFILES, expected_width, target_height, transcode_args
from tests.support.jobrunner import drain
from tests.support.media import make_audio, make_corrupt, make_video


@pytest.fixture
def library(alice, library_root):
    return Library.objects.create(name="Lib", path=str(library_root), owner=alice)


def add_item(library, relative_path, **probe_facts):
    return MediaItem.objects.create(library=library, relative_path=relative_path, **probe_facts)


@pytest.fixture
def clip(library, library_root):
    make_video(library_root / "clip.mp4", seconds=3, size="640x360")
    return add_item(library, "clip.mp4", duration=3.0)


def transcode(user, item, profile):
    job, _ = jobs.enqueue("media.transcode", target=item, params={"profile": profile}, user=user)
    drain()
    job.refresh_from_db()
    return job


def media_file(relative):
    from django.conf import settings

    return settings.MEDIA_ROOT / relative


@pytest.mark.parametrize(
    ("profile", "video", "size", "container"),
    [
        ("h264-1080p", "h264", (640, 360), "mov"),  # a 360p source is never upscaled
        ("h264-720p", "h264", (640, 360), "mov"),
        ("h264-480p", "h264", (640, 360), "mov"),
        ("audio-aac-128k", "", (None, None), "mov"),
        ("hls-720p", "h264", (640, 360), "hls"),
    ],
)
def test_every_profile_output_is_verified_with_ffprobe(alice, clip, profile, video, size, container):
    job = transcode(alice, clip, profile)
    assert job.status == JobStatus.SUCCEEDED, job.error
    rendition = Rendition.objects.get(item=clip, profile=profile)
    output = media_file(rendition.path)
    assert output.is_file()
    meta = ffmpeg.technical_metadata(ffmpeg.probe(output, own_output=True))
    assert meta["video_codec"] == video
    assert meta["audio_codec"] == "aac"
    assert (meta["width"], meta["height"]) == size
    assert meta["duration"] == pytest.approx(3.0, abs=1.0)
    assert meta["container"].startswith(container)
    assert (rendition.width, rendition.height, rendition.video_codec) == (*size, video)
    assert rendition.size > 0
    assert job.result["url"] == f"/media/{rendition.path}"
    if profile == "hls-720p":
        assert sorted(p.name for p in output.parent.iterdir())[:2] == ["index.m3u8", "segment_00000.ts"]
    if profile.startswith("h264"):
        head = output.read_bytes()[:4096]
        assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head  # faststart


def test_progress_rises_monotonically_and_ends_at_100(alice, library, library_root):
    make_video(library_root / "long.mp4", seconds=12, size="320x180")
    item = add_item(library, "long.mp4", duration=12.0)
    job = transcode(alice, item, "h264-480p")
    assert job.status == JobStatus.SUCCEEDED, job.error
    values = [e.payload["progress"] for e in JobEvent.objects.filter(job=job, event="progress").order_by("seq")]
    values = [v for v in values if v is not None]
    assert values == sorted(values)
    assert job.progress == 100.0
    assert job.result["eta_seconds"] == 0


def test_an_output_that_fails_verification_is_never_published(alice, clip, monkeypatch):
    from offload.handlers import transcode as transcode_module

    def cut_short(*args, **kwargs):
        # An encoder that stops early: the file is valid media, one second long, not three.
        argv = transcode_args(*args, **kwargs)
        return [*argv[:-1], "-t", "1", argv[-1]]

    monkeypatch.setattr(transcode_module, "transcode_args", cut_short)
    job = transcode(alice, clip, "h264-480p")
    assert job.status == JobStatus.FAILED
    assert "duration" in job.error
    assert not Rendition.objects.filter(item=clip).exists()
    assert not media_file(f"renditions/{clip.pk}").exists()
    assert not media_file(f".partial/job-{job.pk}").exists()


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"out_time_us": "3000000", "speed": "2.0x", "progress": "continue"}, (30.0, 3.5)),
        ({"out_time_us": "9990000", "speed": "1x", "progress": "continue"}, (99.9, 0.0)),
        ({"out_time_us": "3000000", "speed": "N/A", "progress": "continue"}, (30.0, None)),
        ({"out_time_us": "N/A", "speed": "N/A", "progress": "continue"}, (None, None)),
        ({"out_time_us": "10000000", "speed": "4x", "progress": "end"}, (100.0, 0.0)),
    ],
)
def test_progress_and_eta_come_from_out_time_over_duration_and_speed(block, expected):
    percent, eta = ffmpeg.progress_of(block, duration=10.0)
    assert (percent if percent is None else pytest.approx(percent), eta) == expected


def test_a_rendition_is_replaced_not_duplicated(alice, clip):
    transcode(alice, clip, "h264-480p")
    first = Rendition.objects.get(item=clip, profile="h264-480p")
    transcode(alice, clip, "h264-480p")
    assert Rendition.objects.filter(item=clip, profile="h264-480p").count() == 1
    assert Rendition.objects.get(item=clip, profile="h264-480p").pk == first.pk


def test_two_identical_requests_give_one_job(alice_api, clip):
    first = alice_api.post(f"/api/v1/media/{clip.pk}/transcode/", {"profile": "h264-720p"}, format="json")
    second = alice_api.post(f"/api/v1/media/{clip.pk}/transcode/", {"profile": "h264-720p"}, format="json")
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["params"] == {"profile": "h264-720p"}


def test_an_unknown_profile_answers_400(alice_api, clip):
    response = alice_api.post(f"/api/v1/media/{clip.pk}/transcode/", {"profile": "h265-8k"}, format="json")
    assert response.status_code == 400
    assert "profile" in response.json()
    assert not Job.objects.exists()


def test_profiles_are_listed_with_their_settings_and_the_upscale_rule(alice_api):
    body = alice_api.get("/api/v1/profiles/").json()
    assert [p["name"] for p in body] == ["h264-1080p", "h264-720p", "h264-480p", "audio-aac-128k", "hls-720p"]
    assert body[1]["height"] == 720 and body[1]["container"] == "mp4"
    assert "Never upscale" in body[0]["upscale_rule"]


def test_the_detail_shows_renditions_and_thumbnails(alice, alice_api, clip):
    transcode(alice, clip, "h264-480p")
    thumbs, _ = jobs.enqueue("media.thumbnail", target=clip, user=alice)
    drain()
    thumbs.refresh_from_db()
    assert thumbs.status == JobStatus.SUCCEEDED, thumbs.error
    body = alice_api.get(f"/api/v1/media/{clip.pk}/").json()
    assert body["renditions"][0]["profile"] == "h264-480p"
    assert body["renditions"][0]["url"].startswith("/media/renditions/")
    assert body["thumbnails"]["poster"] == f"/media/thumbnails/{clip.pk}/poster.jpg"
    served = alice_api.get(body["thumbnails"]["poster"])
    assert served.status_code == 200


# --- Bad input: a failed job with a readable reason, never a partial file -----


def no_partial_files():
    from django.conf import settings

    partial = settings.MEDIA_ROOT / ".partial"
    return not partial.exists() or not any(partial.rglob("*"))


def test_a_corrupt_source_fails_readably(alice, library, library_root):
    make_video(library_root / "good.mp4")
    make_corrupt(library_root / "bad.mp4", library_root / "good.mp4")
    job = transcode(alice, add_item(library, "bad.mp4"), "h264-480p")
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("The source is not readable media:")
    assert job.attempts == 1
    assert no_partial_files()


def test_an_audio_source_asked_for_a_video_profile_fails_readably(alice, library, library_root):
    make_audio(library_root / "song.m4a")
    job = transcode(alice, add_item(library, "song.m4a"), "h264-720p")
    assert job.status == JobStatus.FAILED
    assert job.error == "The source has no video stream; h264-720p needs one (try audio-aac-128k)."


def test_a_source_deleted_before_the_job_runs_fails_readably(alice, clip, library_root):
    jobs.enqueue("media.transcode", target=clip, params={"profile": "h264-480p"}, user=alice)
    (library_root / "clip.mp4").unlink()
    drain()
    job = Job.objects.get(kind="media.transcode")
    assert job.status == JobStatus.FAILED
    assert job.error == "The source file clip.mp4 no longer exists."


def test_a_full_disk_fails_the_job_with_ffmpegs_reason_and_no_partial_file(
    alice, staff, clip, settings, tmp_path, client
):
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    assert mounted.returncode == 0, f"cannot mount a tmpfs here: {mounted.stderr!r}"
    try:
        settings.MEDIA_ROOT = disk
        job = transcode(alice, clip, "h264-1080p")
        assert job.status == JobStatus.FAILED
        assert "No space left on device" in job.error
        assert "ffmpeg could not transcode the file" in job.error
        assert not Rendition.objects.exists()
        assert not any((disk / ".partial").rglob("*"))
        assert not (disk / "renditions").exists()
        # The operator reads ffmpeg's own last words on the job's page.
        client.force_login(staff)
        page = client.get(reverse("admin:offload_job_change", args=[job.pk])).content.decode()
        assert "No space left on device" in page
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize(
    "name",
    ["-y.mp4", 'it\'s "quoted".mp4', "a b  c.mp4", "new\nline.mp4", "$(touch pwned);`id`|&.mp4", "concat:x.mp4"],
)
def test_hostile_file_names_transcode_safely(alice, library, library_root, name):
    make_video(library_root / name, seconds=1)
    job = transcode(alice, add_item(library, name), "h264-480p")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert not os.path.exists("pwned")


def test_a_transcode_already_running_elsewhere_waits_for_the_lock(alice, clip):
    held = RedisLock(f"transcode:{clip.pk}:h264-480p")
    assert held.acquire()
    try:
        job = transcode(alice, clip, "h264-480p")
        assert job.status == JobStatus.QUEUED
        assert job.attempts == 0
        assert job.error == f"Another transcode of item {clip.pk} to h264-480p is running."
    finally:
        held.release()


def test_a_killed_attempts_partial_output_is_cleared_by_the_rerun(alice, clip, settings):
    job, _ = jobs.enqueue("media.transcode", target=clip, params={"profile": "h264-480p"}, user=alice)
    leftover = settings.MEDIA_ROOT / ".partial" / f"job-{job.pk}" / "h264-480p.mp4"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a file")
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert no_partial_files()


# --- Thumbnails -------------------------------------------------------------


def test_thumbnails_for_a_video_poster_sprite_and_vtt(alice, clip, settings):
    settings.OFFLOAD_SPRITE_INTERVAL = 1.0
    job, _ = jobs.enqueue("media.thumbnail", target=clip, user=alice)
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    clip.refresh_from_db()
    assert ffmpeg.image_size(media_file(clip.poster)) == (640, 360)
    assert job.result["tiles"] == 3
    assert ffmpeg.image_size(media_file(clip.sprite)) == (1600, 90)
    vtt = media_file(clip.sprite_index).read_text()
    assert vtt.startswith("WEBVTT")
    assert "00:00:01.000 --> 00:00:02.000\nsprite.jpg#xywh=160,0,160,90" in vtt


def test_thumbnails_for_an_audio_track_without_cover_art(alice, library, library_root):
    make_audio(library_root / "song.m4a")
    item = add_item(library, "song.m4a")
    job, _ = jobs.enqueue("media.thumbnail", target=item, user=alice)
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"poster": None, "sprite": None, "sprite_index": None}


def test_a_probe_in_the_scan_pipeline_is_followed_by_enrichment_and_thumbnails(alice, library, library_root):
    make_video(library_root / "new.mp4", seconds=2)
    jobs.enqueue("library.scan", target=library, user=alice)
    drain()
    kinds = dict(Job.objects.values_list("kind", "status"))
    assert kinds == {
        "library.scan": "succeeded",
        "media.probe": "succeeded",
        "media.enrich": "succeeded",
        "media.thumbnail": "succeeded",
    }
    assert MediaItem.objects.get().poster


def test_a_failed_probe_queues_no_later_stage(alice, library, library_root):
    (library_root / "broken.mp4").write_text("not a video")
    jobs.enqueue("library.scan", target=library, user=alice)
    drain()
    assert set(Job.objects.values_list("kind", flat=True)) == {"library.scan", "media.probe"}


# --- Pure pieces ------------------------------------------------------------


def test_never_upscale_rule():
    assert target_height(PROFILES["h264-1080p"], 480) == 480
    assert target_height(PROFILES["h264-720p"], 1080) == 720
    assert target_height(PROFILES["h264-720p"], 361) == 360
    assert expected_width(1920, 1080, 720) == 1280
    assert expected_width(640, 360, 360) == 640


def test_transcode_args_are_a_list_with_pinned_protocols():
    args = transcode_args(PROFILES["h264-720p"], "file:/in/-x.mp4", "/out/a.mp4", source_height=1080, has_audio=True)
    assert args[:2] == ["-i", "file:/in/-x.mp4"]
    assert args[-1] == "file:/out/a.mp4"
    assert "scale=-2:720" in args
    assert "+faststart" in args


def test_a_video_profile_for_a_probed_audio_item_is_refused_at_request_time(alice, alice_api, library, library_root):
    make_audio(library_root / "song.m4a")
    item = add_item(library, "song.m4a")
    jobs.enqueue("media.probe", target=item, user=alice)
    drain()
    item.refresh_from_db()
    assert item.probed_at is not None and not item.video_codec
    response = alice_api.post(f"/api/v1/media/{item.pk}/transcode/", {"profile": "hls-720p"}, format="json")
    assert response.status_code == 400
    assert "has no video stream; hls-720p needs one" in response.json()["detail"]
    assert not Job.objects.filter(kind="media.transcode").exists()
    accepted = alice_api.post(f"/api/v1/media/{item.pk}/transcode/", {"profile": "audio-aac-128k"}, format="json")
    assert accepted.status_code == 202


class StepRun:
    """Stands in for the worker's JobRun: the log it was given, and whether to stop."""

    def __init__(self, stop: bool = False) -> None:
        self.logs: list[list[str]] = []
        self.stop = stop

    def record_log(self, lines) -> None:
        self.logs.append(list(lines))

    def should_stop(self) -> bool:
        return self.stop


def test_an_ffmpeg_step_fails_with_its_stderr_logged_and_stops_as_its_caller_says(db, tmp_path):
    from offload.handlers.transcode import run_ffmpeg_step

    job = Job(kind="media.transcode", target_type="", target_id=0)
    long_source = ["-f", "lavfi", "-i", "testsrc=duration=600:size=320x240:rate=25"]
    out = str(tmp_path / "out.mp4")

    run = StepRun()
    with pytest.raises(jobs.JobFailed) as failed:
        run_ffmpeg_step(job, run, ["-f", "lavfi", "-i", "nosuchsource", out], doing="test", duration=None)
    assert str(failed.value).startswith("ffmpeg could not test:") and run.logs and run.logs[0]

    with pytest.raises(jobs.JobCancelled):
        run_ffmpeg_step(job, StepRun(stop=True), [*long_source, out], doing="test", duration=600)

    def lock_lost() -> None:
        raise jobs.TransientJobError("The lock was lost.")

    with pytest.raises(jobs.TransientJobError) as transient:
        run_ffmpeg_step(job, StepRun(stop=True), [*long_source, out], doing="test", duration=600, on_stopped=lock_lost)
    # The job's error is the stop's own reason, not chained to ffmpeg's stop.
    assert transient.value.__context__ is None


def test_a_file_rendition_is_built_and_published_as_one_file_and_an_hls_one_as_a_folder(tmp_path):
    from offload.handlers.transcode import rendition_paths

    mp4 = rendition_paths(tmp_path, 7, PROFILES["h264-720p"])
    assert (mp4.built, mp4.output) == (tmp_path / "h264-720p.mp4", tmp_path / "h264-720p.mp4")
    assert (mp4.dest, mp4.published_name) == ("renditions/7/h264-720p.mp4", "renditions/7/h264-720p.mp4")
    hls = rendition_paths(tmp_path, 7, PROFILES["hls-720p"])
    assert (hls.built, hls.output) == (tmp_path / "hls-720p", tmp_path / "hls-720p" / "index.m3u8")
    assert (hls.dest, hls.published_name) == ("renditions/7/hls-720p", "renditions/7/hls-720p/index.m3u8")
