"""Lanes: each kind's lane is in its registration, and each lane is a cluster of its own."""

import json
import subprocess

import pytest
from django.conf import settings
from django_q.models import OrmQ
from prometheus_client.parser import text_string_to_metric_families

from offload import jobs
from offload.jobs import kinds
from offload.jobs.lanes import people_key
from offload.models import Job, JobStatus, Library, MediaItem
from tests.support.cluster import wait_for
from tests.support.jobrunner import drain
from tests.support.media import make_video
from tests.support.settings_process import python_with_settings


@pytest.fixture
def library(alice, library_root):
    return Library.objects.create(name="Lib", path=str(library_root), owner=alice)


def queue_key(job: Job) -> str:
    (row,) = [row for row in OrmQ.objects.all() if row.task["args"][0] == job.pk]
    return row.key


def test_each_kind_names_its_lane_and_transcodes_run_in_the_media_lane():
    lanes = {kind.name: kind.lane for kind in kinds.all_kinds()}
    assert lanes["media.transcode"] == "media"
    for name in ("library.scan", "media.probe", "media.enrich", "media.thumbnail"):
        assert lanes[name] == "default"


def test_a_kind_in_an_unknown_lane_is_refused_at_registration():
    with pytest.raises(ValueError, match="unknown lane 'gpu'"):
        kinds.register(kinds.JobKind("test.gpu", lambda job, target, run: None, lane="gpu"))
    with pytest.raises(jobs.UnknownJobKind):
        kinds.get_kind("test.gpu")


def test_a_job_is_queued_on_its_lanes_queue(alice, library):
    item = MediaItem.objects.create(library=library, relative_path="a.mp4", duration=1.0)
    transcode, _ = jobs.enqueue("media.transcode", target=item, params={"profile": "h264-480p"}, user=alice)
    probe, _ = jobs.enqueue("media.probe", target=item, user=alice)
    assert queue_key(transcode) == settings.OFFLOAD_LANES["media"] == "media"
    assert queue_key(probe) == settings.OFFLOAD_LANES["default"] == settings.Q_CLUSTER["name"]


def test_a_job_a_person_asks_for_waits_in_its_lanes_people_queue(alice, alice_api, library):
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    response = alice_api.post(f"/api/v1/media/{item.pk}/probe/")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert queue_key(job) == people_key(settings.Q_CLUSTER["name"])


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Python with the settings loaded from this environment."""
    return python_with_settings(code, lambda k: k.startswith("OFFLOAD_LANE_") or k == "DATABASE_URL", **env)


WORKERS = (
    "import django, json; django.setup(); from django.conf import settings; q = settings.Q_CLUSTER; "
    "print(json.dumps([q['workers'], q['ALT_CLUSTERS']['media']['workers'], q['ALT_CLUSTERS']['search']['workers']]))"
)


def lane_workers(**env: str) -> list[int]:
    done = run_python(WORKERS, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_lane_has_its_own_worker_count():
    given = {"OFFLOAD_LANE_DEFAULT_WORKERS": "3", "OFFLOAD_LANE_MEDIA_WORKERS": "1", "OFFLOAD_LANE_SEARCH_WORKERS": "4"}
    assert lane_workers(**given) == [3, 1, 4]


def test_the_older_worker_count_variables_still_work():
    assert lane_workers(OFFLOAD_Q_WORKERS="5", OFFLOAD_SEARCH_Q_WORKERS="6") == [5, 2, 6]
    # The lane's own name wins over the older one.
    assert lane_workers(OFFLOAD_Q_WORKERS="5", OFFLOAD_LANE_DEFAULT_WORKERS="1") == [1, 2, 2]


@pytest.mark.slow
def test_a_probe_asked_for_through_the_api_finishes_while_two_long_transcodes_fill_the_media_lane(
    qcluster, alice, alice_api, library, library_root
):
    default_lane = qcluster()
    media_lane = qcluster(Q_CLUSTER_NAME=settings.OFFLOAD_LANES["media"], OFFLOAD_LANE_MEDIA_WORKERS="2")
    films = []
    for n in range(2):
        make_video(library_root / f"film{n}.mp4", seconds=600, size="320x180")
        films.append(MediaItem.objects.create(library=library, relative_path=f"film{n}.mp4", duration=600.0))
    make_video(library_root / "short.mp4", seconds=2)
    short = MediaItem.objects.create(library=library, relative_path="short.mp4")
    transcodes = [
        jobs.enqueue("media.transcode", target=film, params={"profile": "h264-480p"}, user=alice)[0] for film in films
    ]
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in transcodes], status=JobStatus.RUNNING).count() == 2,
        what="both transcodes to run",
        cluster=media_lane,
        timeout=60,
    )
    response = alice_api.post(f"/api/v1/media/{short.pk}/probe/")
    assert response.status_code == 202, response.content
    probe_id = response.json()["id"]
    wait_for(
        lambda: Job.objects.get(pk=probe_id).status == JobStatus.SUCCEEDED,
        what="the probe to finish",
        cluster=default_lane,
        timeout=60,
    )
    # Order, not the clock: both transcodes are still at work when the probe is done.
    assert set(Job.objects.filter(pk__in=[j.pk for j in transcodes]).values_list("status", flat=True)) == {
        JobStatus.RUNNING
    }
    for job in transcodes:
        jobs.cancel(job, alice)
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in transcodes], status=JobStatus.CANCELLED).count() == 2,
        what="the transcodes to stop",
        cluster=media_lane,
    )


def test_the_inline_runner_drains_every_lane(alice, library, library_root):
    make_video(library_root / "clip.mp4", seconds=1)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4", duration=1.0)
    transcode, _ = jobs.enqueue("media.transcode", target=item, params={"profile": "audio-aac-128k"}, user=alice)
    probe, _ = jobs.enqueue("media.probe", target=item, user=alice)
    drain()
    assert Job.objects.get(pk=transcode.pk).status == JobStatus.SUCCEEDED
    assert Job.objects.get(pk=probe.pk).status == JobStatus.SUCCEEDED


def workers_alive(client) -> dict[str, float]:
    text = client.get("/metrics").content.decode()
    return {
        sample.labels["lane"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "offload_workers_alive"
    }


@pytest.mark.slow
def test_the_workers_alive_gauge_counts_each_lanes_workers(qcluster, client):
    assert workers_alive(client) == {"default": 0, "media": 0, "search": 0, "notify": 0}
    default_lane = qcluster(OFFLOAD_LANE_DEFAULT_WORKERS="2")
    qcluster(Q_CLUSTER_NAME=settings.OFFLOAD_LANES["media"], OFFLOAD_LANE_MEDIA_WORKERS="1")
    wait_for(
        lambda: workers_alive(client) == {"default": 2, "media": 1, "search": 0, "notify": 0},
        what="both lanes to report their workers",
        cluster=default_lane,
        timeout=60,
    )
