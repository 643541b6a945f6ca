"""The worker's claim, progress and finish as one statement each, and the job JSON PostgreSQL builds for them."""

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from offload import jobs
from offload.jobs import control
from offload.jobs.payload import job_payload, payload_sql
from offload.jobs.runner import execute
from offload.models import Job, JobEvent, JobStatus, MediaItem

pytestmark = pytest.mark.django_db(transaction=True)


def database_payload(job: Job) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ({payload_sql('j')})::text FROM offload_job j WHERE j.id = %s", [job.pk])
        return json.loads(cursor.fetchone()[0])


def python_payload(job: Job) -> dict:
    job.refresh_from_db()
    # As the event log stores it: through JSON.
    return json.loads(json.dumps(job_payload(job)))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"status": JobStatus.RUNNING, "progress": 25.5, "attempts": 1, "started_at": "whole-second"},
        {"status": JobStatus.FAILED, "error": "The source is not readable media: «moov» missing", "attempts": 3},
        {"status": JobStatus.SUCCEEDED, "result": {"streams": [1, 2], "note": "ok"}, "progress": 100.0},
    ],
)
def test_postgresql_builds_the_same_job_json_as_python(alice, changes):
    job, _ = jobs.enqueue("system.noop", user=alice, params={})
    now = timezone.now()
    values = {**changes, "finished_at": now}
    if values.get("started_at") == "whole-second":
        values["started_at"] = now.replace(microsecond=0)
    Job.objects.filter(pk=job.pk).update(**values)
    assert database_payload(job) == python_payload(job)


def test_a_targeted_job_has_the_same_json_both_ways(alice, library_root):
    from offload.models import Library

    library = Library.objects.create(name="Alice's", path=str(library_root / "a"), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4")
    job, _ = jobs.enqueue("media.probe", target=item, user=alice)
    Job.objects.filter(pk=job.pk).update(created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    assert database_payload(job) == python_payload(job)


def test_claim_progress_and_finish_are_one_round_trip_each(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    with CaptureQueriesContext(connection) as claim:
        claimed, why_not = control.pick_up(job.pk)
    assert (claimed.pk, claimed.status, claimed.attempts, why_not) == (job.pk, JobStatus.RUNNING, 1, "")
    with CaptureQueriesContext(connection) as progress:
        assert jobs.heartbeat(claimed, progress=40.0)
    with CaptureQueriesContext(connection) as finish:
        assert jobs.succeed(claimed, {"done": True})
    assert [len(claim), len(progress), len(finish)] == [1, 1, 1]
    events = list(JobEvent.objects.filter(job=job).order_by("seq"))
    assert [e.event for e in events] == ["queued", "started", "progress", "succeeded"]
    # Numbered as each committed, in order, and each carrying the job as it was then.
    assert all(e.seq for e in events)
    assert [e.payload["status"] for e in events] == ["queued", "running", "running", "succeeded"]
    assert events[2].payload["progress"] == 40.0
    assert events[3].payload["result"] == {"done": True}
    assert events[3].payload == python_payload(job)


def prepared_transitions() -> set[str]:
    """The job transitions this session holds prepared (PostgreSQL parsed them once)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%%WITH changed AS%%'")
        return {statement for (statement,) in cursor.fetchall()}


@pytest.mark.parametrize("prepare", [True, False])
def test_the_workers_statements_are_prepared_once_per_connection_not_once_per_job(alice, settings, prepare):
    settings.OFFLOAD_DB_PREPARED_STATEMENTS = prepare
    connection.close()  # a session of its own, with nothing prepared yet
    first = [jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(2)]
    for job in first:
        assert execute(job.pk) == "succeeded"
    after_two = prepared_transitions()
    for job in [jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(2, 8)]:
        assert execute(job.pk) == "succeeded"
    # Behind a pooler that cannot keep them (OFFLOAD_DB_PREPARED_STATEMENTS=0), nothing is prepared.
    if not prepare:
        assert prepared_transitions() == after_two == set()
        return
    # The claim and the finish, each prepared by the first job and used as they are by the next seven.
    assert len(after_two) == 2
    claim, finish = sorted(after_two, key=lambda sql: "closed_succeeded" in sql)
    assert "opened AS" in claim and "closed_succeeded" in finish
    assert prepared_transitions() == after_two


def test_a_task_delivered_twice_runs_the_job_once(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    assert execute(job.pk) == "succeeded"
    assert execute(job.pk) == control.NOT_CLAIMED
    assert list(JobEvent.objects.filter(job=job).values_list("event", flat=True).order_by("seq")) == [
        "queued",
        "started",
        "succeeded",
    ]
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_a_pause_set_a_moment_ago_holds_the_next_job(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    control.pause("system.noop")
    assert control.pick_up(job.pk) == (None, control.PARKED_OUTCOME)
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    control.resume("system.noop")
    claimed, _ = control.pick_up(job.pk)
    assert claimed is not None and claimed.status == JobStatus.RUNNING


def test_a_worker_lost_on_the_last_attempt_fails_the_job_at_the_next_delivery(alice, settings):
    job, _ = jobs.enqueue("system.noop", user=alice)
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=job.max_attempts, heartbeat_at=long_ago)
    assert control.pick_up(job.pk) == (None, control.NOT_CLAIMED)
    failed = Job.objects.get(pk=job.pk)
    assert failed.status == JobStatus.FAILED
    assert "Gave up after" in failed.error
    assert "started" not in set(JobEvent.objects.filter(job=job).values_list("event", flat=True))


def test_a_success_with_next_stages_queues_them_with_its_commit(alice, library_root):
    from offload.models import Library

    library = Library.objects.create(name="Alice's", path=str(library_root / "a"), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4")
    job, _ = jobs.enqueue("media.probe", target=item, user=alice, then=["media.enrich"])
    claimed, _ = control.pick_up(job.pk)
    assert jobs.succeed(claimed, {})
    assert Job.objects.filter(kind="media.enrich", target_id=item.pk, status=JobStatus.QUEUED).exists()


def test_a_finish_someones_endpoint_may_hear_writes_its_outbox_row_with_it(alice, bob, settings):
    from offload.alerts import endpoints
    from offload.alerts.models import Delivery

    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True
    hook, _ = endpoints.create_endpoint(
        alice, {"agent": "webhook", "name": "script", "url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]}
    )
    # Bob's job: no endpoint of his may hear it, so it finishes in one statement and writes nothing.
    bobs, _ = jobs.enqueue("system.noop", user=bob)
    claimed, _ = control.pick_up(bobs.pk)
    with CaptureQueriesContext(connection) as finish:
        assert jobs.succeed(claimed, {})
    assert len(finish) == 1
    # Alice's: her endpoint hears it, so the finish goes the transactional way with its outbox row.
    alices, _ = jobs.enqueue("system.noop", user=alice)
    claimed, _ = control.pick_up(alices.pk)
    assert jobs.succeed(claimed, {})
    (delivery,) = Delivery.objects.filter(endpoint=hook)
    assert delivery.job_id == alices.pk
    assert JobEvent.objects.filter(job=alices, event="succeeded").exists()


def test_each_event_says_whether_it_is_a_first_queue_a_requeue_a_start_or_a_finish(alice):
    # Those who count jobs (the metrics) subscribe to the seam and read only this: a backoff is
    # not a new entry into the queue, a person's retry is.
    heard = []

    def listener(sender, event, **kwargs):
        heard.append((event.event, event.moment))

    jobs.job_event_committed.connect(listener)
    try:
        job, _ = jobs.enqueue("system.noop", user=alice)
        claimed, _ = control.pick_up(job.pk)
        assert jobs.fail_or_retry(claimed, "the disk was busy")
        Job.objects.filter(pk=job.pk).update(queued_at=timezone.now())
        claimed, _ = control.pick_up(job.pk)
        assert jobs.heartbeat(claimed, progress=50.0)
        assert jobs.fail(claimed, "ffprobe could not read it")
        jobs.retry(job, alice)
    finally:
        jobs.job_event_committed.disconnect(listener)
    assert heard == [
        ("queued", jobs.FIRST_QUEUE),
        ("started", jobs.START),
        ("queued", jobs.REQUEUE),
        ("started", jobs.START),
        ("progress", jobs.PROGRESS),
        ("failed", jobs.FINISH),
        ("queued", jobs.FIRST_QUEUE),
    ]
