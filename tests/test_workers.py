"""The whole path with a real qcluster on PostgreSQL: run, cancel, time out, survive SIGKILL."""

import pytest

from offload.models import Job, JobEvent, JobStatus, Library, MediaItem, Rendition
from tests.support.cluster import media_lane, wait_for
from tests.support.media import make_video

pytestmark = pytest.mark.slow


def job_status(pk):
    return Job.objects.values_list("status", flat=True).get(pk=pk)


def test_a_probe_requested_through_the_api_runs_in_a_real_cluster(qcluster, alice_api, alice, library_root):
    make_video(library_root / "lib" / "clip.mp4")
    library = Library.objects.create(name="L", path=str(library_root / "lib"), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4")
    cluster = qcluster()
    response = alice_api.post(f"/api/v1/media/{item.pk}/probe/")
    assert response.status_code == 202
    job_id = response.json()["id"]
    wait_for(lambda: job_status(job_id) == JobStatus.SUCCEEDED, what="the probe to succeed", cluster=cluster)
    item.refresh_from_db()
    assert item.video_codec == "h264"
    events = list(JobEvent.objects.filter(job_id=job_id).order_by("seq").values_list("event", flat=True))
    assert events[0] == "queued" and events[1] == "started" and events[-1] == "succeeded"


def test_a_scan_in_a_real_cluster_probes_what_it_found(qcluster, alice_api, alice, library_root):
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        make_video(library_root / "lib" / name)
    library = Library.objects.create(name="L", path=str(library_root / "lib"), owner=alice)
    cluster = qcluster()
    alice_api.post(f"/api/v1/libraries/{library.pk}/scan/")
    wait_for(
        lambda: Job.objects.filter(kind="media.probe", status=JobStatus.SUCCEEDED).count() == 3,
        what="three probes to succeed",
        cluster=cluster,
    )
    assert set(library.items.values_list("video_codec", flat=True)) == {"h264"}


def test_cancel_stops_a_running_job(qcluster, staff_api, staff, alice):
    from offload import jobs

    cluster = qcluster(OFFLOAD_JOB_STALE_SECONDS="2")
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 30}, user=alice)
    wait_for(lambda: job_status(job.pk) == JobStatus.RUNNING, what="the job to start", cluster=cluster)
    response = staff_api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 202
    wait_for(lambda: job_status(job.pk) == JobStatus.CANCELLED, timeout=10, what="the cancel", cluster=cluster)
    job.refresh_from_db()
    assert job.progress < 50
    assert job.cancelled_by == staff


def test_a_job_past_its_timeout_fails_with_a_readable_reason(qcluster, alice, settings):
    from offload import jobs

    # The task's timeout is fixed when it is queued, from the enqueuer's settings.
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 2, "retry": 30}
    cluster = qcluster(OFFLOAD_Q_TIMEOUT="2", OFFLOAD_Q_RETRY="30")
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 20}, user=alice)
    wait_for(lambda: job_status(job.pk) == JobStatus.FAILED, timeout=20, what="the timeout", cluster=cluster)
    job.refresh_from_db()
    assert job.error == "Timed out after 2 seconds."


def test_a_job_whose_cluster_is_killed_mid_run_reruns_and_finishes_once(qcluster, alice, settings):
    from offload import jobs

    # Short lease and heartbeat so the test does not wait an hour for redelivery.
    env = {"OFFLOAD_Q_TIMEOUT": "8", "OFFLOAD_Q_RETRY": "14", "OFFLOAD_JOB_STALE_SECONDS": "3"}
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 8, "retry": 14}
    first = qcluster(**env)
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 4}, user=alice)
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, progress__gt=0).exists(),
        what="the job to make progress",
        cluster=first,
    )
    first.kill()
    assert job_status(job.pk) == JobStatus.RUNNING

    second = qcluster(**env)
    wait_for(lambda: job_status(job.pk) == JobStatus.SUCCEEDED, timeout=60, what="the re-run", cluster=second)
    job.refresh_from_db()
    assert job.attempts == 2
    assert job.result == {"slept": 4.0, "attempt": 2}
    events = list(
        JobEvent.objects.filter(job=job).exclude(event="progress").order_by("seq").values_list("event", flat=True)
    )
    # The second cluster's workers saw the heartbeat go stale and re-queued the job, saying so.
    assert events == ["queued", "started", "queued", "started", "succeeded"]
    assert [a.outcome for a in job.attempt_history.all()] == ["lost", "succeeded"]
    assert job.attempt_history.get(number=1).pid != job.attempt_history.get(number=2).pid


def ffmpeg_processes_of(job_id: int) -> list[str]:
    """Command lines of running ffmpeg processes writing this job's partial output."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "ffmpeg" in cmdline and f"/.partial/job-{job_id}/" in cmdline:
            found.append(cmdline)
    return found


@pytest.fixture
def long_clip(alice, library_root):
    from tests.support.media import make_video

    make_video(library_root / "long.mp4", seconds=40, size="640x360")
    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    return MediaItem.objects.create(library=library, relative_path="long.mp4", duration=40.0)


def test_cancel_stops_a_running_transcode_and_leaves_nothing(qcluster, alice_api, alice, long_clip, settings):
    cluster = qcluster(**media_lane())
    response = alice_api.post(f"/api/v1/media/{long_clip.pk}/transcode/", {"profile": "h264-1080p"}, format="json")
    job_id = response.json()["id"]
    wait_for(lambda: ffmpeg_processes_of(job_id), what="ffmpeg to start", cluster=cluster)
    cancel = alice_api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert cancel.status_code == 202
    wait_for(lambda: job_status(job_id) == JobStatus.CANCELLED, timeout=10, what="the cancel", cluster=cluster)
    assert ffmpeg_processes_of(job_id) == []
    assert not (settings.MEDIA_ROOT / ".partial" / f"job-{job_id}").exists()
    assert not Rendition.objects.exists()
    assert Job.objects.get(pk=job_id).cancelled_by == alice


def test_a_transcode_whose_cluster_is_killed_reruns_and_leaves_no_half_file(qcluster, alice, long_clip, settings):
    from offload import jobs
    from offload.jobs import reaper

    env = {"OFFLOAD_Q_TIMEOUT": "120", "OFFLOAD_Q_RETRY": "130", "OFFLOAD_JOB_STALE_SECONDS": "3"}
    settings.OFFLOAD_JOB_STALE_SECONDS = 3
    first = qcluster(**media_lane(**env))
    job, _ = jobs.enqueue("media.transcode", target=long_clip, params={"profile": "h264-480p"}, user=alice)
    wait_for(lambda: ffmpeg_processes_of(job.pk), what="ffmpeg to start", cluster=first)
    first.kill()
    # ffmpeg dies with the worker that started it: nothing goes on writing.
    wait_for(lambda: not ffmpeg_processes_of(job.pk), timeout=10, what="ffmpeg to die with its worker")
    assert not (settings.MEDIA_ROOT / "renditions").exists()

    second = qcluster(**media_lane(**env))
    # The dead attempt's heartbeat goes stale; the reaper hands the job to the new cluster.
    wait_for(
        lambda: reaper.reap_stale_jobs() or job_status(job.pk) != JobStatus.RUNNING, timeout=20, what="a stale job"
    )
    wait_for(lambda: job_status(job.pk) == JobStatus.SUCCEEDED, timeout=120, what="the re-run", cluster=second)
    job.refresh_from_db()
    assert job.attempts == 2
    assert Rendition.objects.filter(item=long_clip).count() == 1
    assert not (settings.MEDIA_ROOT / ".partial" / f"job-{job.pk}").exists()
    output = settings.MEDIA_ROOT / Rendition.objects.get().path
    assert sorted(p.name for p in output.parent.iterdir()) == ["h264-480p.mp4"]
