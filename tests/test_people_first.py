"""People before backlogs: a job a person asked for starts before the stages a scan queued, within its lane."""

import pytest
from django.conf import settings
from django_q.models import OrmQ

from offload import jobs
from offload.handlers.scan import PIPELINE_AFTER_PROBE
from offload.jobs.lanes import people_key
from offload.models import Job, JobPriority, JobStatus, Library, MediaItem
from tests.support.jobrunner import run_next
from tests.support.media import make_video


@pytest.fixture
def items(alice, library_root):
    library = Library.objects.create(name="Lib", path=str(library_root), owner=alice)
    clip = make_video(library_root / "clip0.mp4", seconds=1)
    for n in range(1, 21):
        (library_root / f"clip{n}.mp4").hardlink_to(clip)
    return [MediaItem.objects.create(library=library, relative_path=f"clip{n}.mp4") for n in range(21)]


def started() -> list[int]:
    return list(Job.objects.filter(started_at__isnull=False).order_by("started_at", "id").values_list("pk", flat=True))


def test_a_probe_asked_for_through_the_api_starts_before_the_scans_backlog(alice, alice_api, items):
    backlog = [
        jobs.enqueue("media.probe", target=item, user=alice, then=PIPELINE_AFTER_PROBE)[0] for item in items[:20]
    ]
    response = alice_api.post(f"/api/v1/media/{items[20].pk}/probe/")
    assert response.status_code == 202
    asked = response.json()["id"]
    assert Job.objects.get(pk=asked).priority == JobPriority.PERSON
    assert all(job.priority == JobPriority.PIPELINE for job in backlog)
    run_next("default")
    assert started() == [asked]
    assert Job.objects.get(pk=asked).status == JobStatus.SUCCEEDED


def test_the_backlog_runs_in_queue_order(alice, items):
    backlog = [jobs.enqueue("media.probe", target=item, user=alice)[0] for item in items[:5]]
    for _ in backlog:
        run_next("default")
    assert started() == [job.pk for job in backlog]


def test_a_stage_the_pipeline_queues_after_an_asked_for_probe_joins_the_backlog(alice, alice_api, items):
    response = alice_api.post(f"/api/v1/media/{items[0].pk}/probe/")
    Job.objects.filter(pk=response.json()["id"]).update(then=["media.enrich"])
    run_next("default")
    enrich = Job.objects.get(kind="media.enrich")
    assert enrich.priority == JobPriority.PIPELINE


def test_asking_for_a_job_the_backlog_holds_moves_it_ahead(alice, alice_api, items):
    backlog = [jobs.enqueue("media.probe", target=item, user=alice)[0] for item in items[:5]]
    response = alice_api.post(f"/api/v1/media/{items[3].pk}/probe/")
    assert response.status_code == 200
    assert response.json()["id"] == backlog[3].pk
    assert Job.objects.get(pk=backlog[3].pk).priority == JobPriority.PERSON
    run_next("default")
    assert started() == [backlog[3].pk]
    # Its old backlog task finds the job done and does nothing.
    while run_next("default"):
        pass
    assert Job.objects.get(pk=backlog[3].pk).attempts == 1


def test_a_retry_asked_for_by_a_person_goes_to_the_people_queue(alice, items):
    job = jobs.enqueue("media.probe", target=items[0], user=alice)[0]
    jobs.cancel(job, alice)
    job = jobs.retry(job, alice)
    (row,) = [row for row in OrmQ.objects.all() if row.task["id"] == job.task_id]
    assert row.key == people_key(settings.Q_CLUSTER["name"])
