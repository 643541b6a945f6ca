"""GET /api/v1/queues/, pause, resume and caps through the API, and the drain forecast (JSON and gauge)."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from offload import jobs
from offload.jobs.forecast import drain_seconds, queue_rows
from offload.models import Job, JobStatus, Library, MediaItem, QueueControl
from tests.support.jobrunner import drain

ROW_FIELDS = {
    "kind",
    "lane",
    "paused",
    "concurrency",
    "queued",
    "running",
    "oldest_queued_seconds",
    "finished_last_15m",
    "drain_seconds",
}


def noop(user, n: int) -> Job:
    return jobs.enqueue("system.noop", params={"n": n}, user=user)[0]


def row(rows: list[dict], kind: str) -> dict:
    return next(r for r in rows if r["kind"] == kind)


def test_staff_see_one_row_per_kind(staff_api):
    response = staff_api.get("/api/v1/queues/")
    assert response.status_code == 200
    rows = response.json()
    assert {r["kind"] for r in rows} >= {"library.scan", "media.probe", "media.transcode", "search.reindex"}
    assert all(set(r) == ROW_FIELDS for r in rows)
    assert row(rows, "media.transcode")["lane"] == "media"
    assert row(rows, "media.probe") == {
        "kind": "media.probe",
        "lane": "default",
        "paused": False,
        "concurrency": None,
        "queued": 0,
        "running": 0,
        "oldest_queued_seconds": None,
        "finished_last_15m": 0,
        "drain_seconds": 0.0,
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/queues/"),
        ("post", "/api/v1/queues/media.probe/pause/"),
        ("post", "/api/v1/queues/media.probe/resume/"),
        ("patch", "/api/v1/queues/media.probe/"),
    ],
)
def test_only_staff_steer_the_queues(alice_api, anon_api, method, path):
    assert getattr(alice_api, method)(path, {"concurrency": 1}, format="json").status_code == 403
    assert getattr(anon_api, method)(path, {"concurrency": 1}, format="json").status_code == 401
    assert not QueueControl.objects.exists()


def test_pause_through_the_api_keeps_new_jobs_waiting_until_resume(staff, staff_api, alice_api, alice, library_root):
    response = staff_api.post("/api/v1/queues/system.noop/pause/")
    assert response.status_code == 200
    assert response.json()["paused"] is True
    job = noop(alice, 1)
    drain()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    assert row(staff_api.get("/api/v1/queues/").json(), "system.noop")["queued"] == 1
    resumed = staff_api.post("/api/v1/queues/system.noop/resume/").json()
    assert (resumed["paused"], resumed["queued"]) == (False, 1)
    drain()
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED
    messages = list(LogEntry.objects.filter(user=staff).values_list("change_message", flat=True))
    assert "Paused system.noop." in messages and "Resumed system.noop." in messages


def test_a_paused_kind_still_accepts_requests_with_202(staff_api, alice_api, alice, library_root):
    library = Library.objects.create(name="Lib", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    staff_api.post("/api/v1/queues/media.probe/pause/")
    response = alice_api.post(f"/api/v1/media/{item.pk}/probe/")
    assert response.status_code == 202
    drain()
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)


def test_a_cap_is_set_and_cleared_through_the_api(staff, staff_api):
    response = staff_api.patch("/api/v1/queues/media.transcode/", {"concurrency": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["concurrency"] == 1
    assert QueueControl.objects.get(kind="media.transcode").concurrency == 1
    cleared = staff_api.patch("/api/v1/queues/media.transcode/", {"concurrency": None}, format="json")
    assert cleared.json()["concurrency"] is None
    assert LogEntry.objects.filter(user=staff, change_message="Set media.transcode to no cap.").exists()


@pytest.mark.parametrize("body", [{"concurrency": 0}, {"concurrency": "two"}, {}, {"concurrency": -1}])
def test_a_bad_cap_answers_400(staff_api, body):
    response = staff_api.patch("/api/v1/queues/media.transcode/", body, format="json")
    assert response.status_code == 400
    assert "concurrency" in response.json()


def test_an_unknown_kind_answers_404(staff_api):
    assert staff_api.post("/api/v1/queues/media.nonsense/pause/").status_code == 404
    assert staff_api.patch("/api/v1/queues/nope/", {"concurrency": 1}, format="json").status_code == 404
    assert not QueueControl.objects.exists()


def drained_at_a_known_rate(user, finished: int, queued: int) -> None:
    """`finished` jobs that really ran, one every 900/finished seconds over the last 15 minutes; `queued` waiting."""
    done = [noop(user, n) for n in range(finished)]
    drain()
    now = timezone.now()
    step = 900 / finished
    for n, job in enumerate(done):
        Job.objects.filter(pk=job.pk).update(finished_at=now - timedelta(seconds=n * step + 1))
    for n in range(queued):
        noop(user, 1000 + n)
    # An old finish outside the window does not count.
    old = noop(user, 9999)
    Job.objects.filter(pk=old.pk).update(status=JobStatus.SUCCEEDED, finished_at=now - timedelta(minutes=20))


def test_the_forecast_matches_a_queue_drained_at_a_known_rate(staff, staff_api):
    # 30 finished in 15 minutes: one every 30 s. 10 waiting: empty in 300 s.
    drained_at_a_known_rate(staff, finished=30, queued=10)
    waiting = Job.objects.filter(kind="system.noop", status=JobStatus.QUEUED)
    waiting.update(queued_at=timezone.now() - timedelta(seconds=60))
    figures = row(staff_api.get("/api/v1/queues/").json(), "system.noop")
    assert figures["finished_last_15m"] == 30
    assert figures["queued"] == 10
    assert figures["drain_seconds"] == 300.0
    assert figures["oldest_queued_seconds"] >= 60


def test_a_queue_that_is_not_draining_answers_null(staff):
    for n in range(3):
        noop(staff, n)
    assert row(queue_rows(), "system.noop")["drain_seconds"] is None


def test_drain_seconds_rules():
    assert drain_seconds(queued=0, running=0, finished=0, paused=False) == 0.0
    assert drain_seconds(queued=5, running=1, finished=0, paused=False) is None
    assert drain_seconds(queued=5, running=1, finished=60, paused=True) is None
    assert drain_seconds(queued=5, running=1, finished=60, paused=False) == 90.0
    # Paused with only running jobs left: they finish.
    assert drain_seconds(queued=0, running=2, finished=60, paused=True) == 30.0


def gauge(client, kind: str) -> float:
    text = client.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "offload_queue_drain_seconds" and sample.labels == {"kind": kind}:
                return sample.value
    raise AssertionError(f"no offload_queue_drain_seconds for {kind}")


def test_the_drain_gauge_follows_the_forecast(client, staff):
    drained_at_a_known_rate(staff, finished=30, queued=10)
    assert gauge(client, "system.noop") == 300.0
    jobs.enqueue("system.sleep", params={"seconds": 1}, user=staff)
    assert gauge(client, "system.sleep") == float("inf")
    assert gauge(client, "media.probe") == 0.0
