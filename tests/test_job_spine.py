"""The job spine, run inline: enqueue, dedupe, idempotency, claim, finish, retry, cancel."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ

from offload import jobs
from offload.jobs import kinds, reaper, transitions
from offload.jobs.runner import execute
from offload.lib import outputs
from offload.models import Job, JobEvent, JobStatus
from tests.support import kinds_for_tests
from tests.support.jobrunner import drain

TEST_KINDS = (
    kinds.JobKind("test.broken", kinds_for_tests.run_broken, internal=True),
    kinds.JobKind("test.flaky", kinds_for_tests.run_flaky, internal=True),
    kinds.JobKind("test.crashing", kinds_for_tests.run_crashing, internal=True),
    kinds.JobKind("test.deferring", kinds_for_tests.run_deferring, internal=True),
)


@pytest.fixture(autouse=True)
def test_kinds():
    with kinds_for_tests.registered(*TEST_KINDS):
        yield


def events_of(job):
    return list(JobEvent.objects.filter(job=job).order_by("seq").values_list("event", flat=True))


def test_enqueue_writes_job_event_and_queue_row_together(alice):
    job, created = jobs.enqueue("system.noop", user=alice)
    assert created
    assert job.status == JobStatus.QUEUED
    assert events_of(job) == ["queued"]
    assert OrmQ.objects.count() == 1
    assert job.task_id


def test_rollback_leaves_neither_job_nor_queue_row(alice):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        jobs.enqueue("system.noop", user=alice)
        raise Boom
    assert Job.objects.count() == 0
    assert OrmQ.objects.count() == 0
    assert JobEvent.objects.count() == 0


def test_asking_again_returns_the_active_job(alice):
    first, created = jobs.enqueue("system.sleep", params={"seconds": 0.1}, user=alice)
    again, created_again = jobs.enqueue("system.sleep", params={"seconds": 0.1}, user=alice)
    assert created and not created_again
    assert again.pk == first.pk
    other, created_other = jobs.enqueue("system.sleep", params={"seconds": 0.2}, user=alice)
    assert created_other and other.pk != first.pk


def test_a_finished_job_does_not_block_a_new_one(alice):
    first, _ = jobs.enqueue("system.noop", user=alice)
    drain()
    second, created = jobs.enqueue("system.noop", user=alice)
    assert created and second.pk != first.pk


@pytest.mark.django_db(transaction=True)
def test_two_threads_asking_at_once_get_one_job(alice):
    barrier = threading.Barrier(2)
    answers = []

    def ask():
        try:
            barrier.wait()
            answers.append(jobs.enqueue("system.sleep", params={"seconds": 5}, user=alice))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 2
    assert answers[0][0].pk == answers[1][0].pk
    assert sorted(created for _, created in answers) == [False, True]
    assert Job.objects.count() == 1
    assert OrmQ.objects.count() == 1


def test_same_idempotency_key_answers_the_same_job_even_after_it_finished(alice):
    job, created = jobs.enqueue("system.noop", user=alice, idempotency_key="k-1")
    drain()
    again, created_again = jobs.enqueue("system.noop", user=alice, idempotency_key="k-1")
    assert created and not created_again
    assert again.pk == job.pk
    assert Job.objects.count() == 1


def test_idempotency_key_is_per_user(alice, bob):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice, idempotency_key="same")
    drain()
    other, created = jobs.enqueue("system.sleep", params={"seconds": 1}, user=bob, idempotency_key="same")
    assert created and other.pk != job.pk


def test_idempotency_key_expires_after_a_day(alice):
    job, _ = jobs.enqueue("system.noop", user=alice, idempotency_key="old")
    drain()
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=25))
    fresh, created = jobs.enqueue("system.noop", user=alice, idempotency_key="old")
    assert created and fresh.pk != job.pk


def test_idempotency_key_reused_for_another_request_is_refused(alice):
    jobs.enqueue("system.noop", user=alice, idempotency_key="k")
    with pytest.raises(jobs.IdempotencyKeyReused):
        jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice, idempotency_key="k")


def test_a_task_delivered_twice_runs_the_job_once(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    assert execute(job.pk) == "succeeded"
    assert execute(job.pk) == "not claimed"
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 1
    assert job.result == {"ok": True}
    assert job.started_at and job.finished_at
    assert events_of(job) == ["queued", "started", "succeeded"]


def test_event_seqs_strictly_increase(alice):
    for seconds in (0.1, 0.2):
        jobs.enqueue("system.sleep", params={"seconds": seconds}, user=alice)
    drain()
    seqs = list(JobEvent.objects.filter(user=alice).order_by("id").values_list("seq", flat=True))
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def test_progress_is_written_at_most_once_a_second(alice):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 2.5}, user=alice)
    drain()
    progress_events = JobEvent.objects.filter(job=job, event="progress").count()
    # 25 progress reports over 2.5 s: the first one writes, then one a second at most.
    assert 1 <= progress_events <= 4
    job.refresh_from_db()
    assert job.progress == 100.0


def test_permanent_failure_records_a_readable_error_and_is_not_retried(alice):
    job, _ = jobs.enqueue("test.broken", user=alice)
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "The input is unusable: nothing to do."
    assert job.attempts == 1
    assert events_of(job) == ["queued", "started", "failed"]


def test_transient_failure_goes_back_to_queued_with_a_delayed_retry(alice):
    job, _ = jobs.enqueue("test.flaky", params={"succeed_on": 2}, user=alice)
    assert drain() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert job.error == "upstream answered 503"
    assert job.attempts == 1
    # The retry's queue row is there, but no worker may take it before the backoff ends.
    retry_row = OrmQ.objects.get()
    assert retry_row.lock > timezone.now()
    assert drain() == 0
    OrmQ.objects.update(lock=timezone.now() - timedelta(seconds=1))
    assert drain() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"attempt": 2}
    assert events_of(job) == ["queued", "started", "queued", "started", "succeeded"]


def test_a_deferred_job_goes_back_without_spending_an_attempt(alice):
    job, _ = jobs.enqueue("test.deferring", user=alice)
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert job.attempts == 0
    assert job.error == "the scanner is busy"
    assert OrmQ.objects.get().lock > timezone.now()


def test_unexpected_errors_fail_for_good_after_max_attempts(alice, settings):
    settings.OFFLOAD_JOB_MAX_ATTEMPTS = 2
    job, _ = jobs.enqueue("test.crashing", user=alice)
    drain()
    execute(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.attempts == 2
    assert "ZeroDivisionError: division by zero" in job.error
    assert "after 2 attempts" in job.error
    assert execute(job.pk) == "not claimed"


def test_cancel_a_queued_job(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    jobs.cancel(job, alice)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.cancelled_by == alice
    assert drain() == 1  # the task is delivered, finds nothing to do
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert events_of(job) == ["queued", "cancelled"]


def test_cancel_a_finished_job_conflicts(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    drain()
    with pytest.raises(jobs.JobConflict):
        jobs.cancel(job, alice)


def test_retry_a_failed_job_runs_it_again(alice):
    job, _ = jobs.enqueue("test.broken", user=alice)
    drain()
    jobs.retry(job, alice)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert job.attempts == 0 and job.error is None
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert events_of(job) == ["queued", "started", "failed", "queued", "started", "failed"]


def test_retry_a_succeeded_job_conflicts(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    drain()
    with pytest.raises(jobs.JobConflict):
        jobs.retry(job, alice)


def test_retry_conflicts_while_an_identical_job_is_active(alice):
    job, _ = jobs.enqueue("test.broken", user=alice)
    drain()
    twin, created = jobs.enqueue("test.broken", user=alice)
    assert created
    with pytest.raises(jobs.JobConflict, match=f"job {twin.pk}"):
        jobs.retry(job, alice)


def test_a_running_job_with_a_stale_heartbeat_is_taken_over(alice, settings):
    job, _ = jobs.enqueue("system.noop", user=alice)
    claimed = jobs.claim(job.pk)
    assert claimed is not None
    # The worker died: its heartbeat stops.
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 1)
    )
    assert reaper.reap_stale_jobs() == 1
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2
    # The lost attempt can no longer finish the job.
    assert not jobs.succeed(claimed, {"late": True})
    job.refresh_from_db()
    assert job.result == {"ok": True}


def test_a_fresh_running_job_is_not_taken_over(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    assert jobs.claim(job.pk) is not None
    assert jobs.claim(job.pk) is None
    assert reaper.reap_stale_jobs() == 0


def test_a_job_whose_worker_dies_every_time_stops_after_max_attempts(
    alice, settings, library_root, django_capture_on_commit_callbacks
):
    settings.OFFLOAD_JOB_MAX_ATTEMPTS = 2
    job, _ = jobs.enqueue("system.noop", user=alice)
    stale = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 1)
    for _ in range(2):
        assert jobs.claim(job.pk) is not None
        Job.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    partial = outputs.fresh_partial_dir(job)
    (partial / "half.mp4").write_bytes(b"half written")
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.claim(job.pk) is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "Gave up after 2 attempts" in job.error
    assert not partial.exists()


def test_a_transient_failure_with_retry_after_waits_at_least_that_long(alice, monkeypatch):
    def run_throttled(job, target, run):
        raise kinds_for_tests.TransientJobError("upstream said 429", retry_after=120)

    kinds.register(kinds.JobKind("test.flaky", run_throttled, internal=True))
    job, _ = jobs.enqueue("test.flaky", user=alice)
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert OrmQ.objects.get().lock >= timezone.now() + timedelta(seconds=115)
    # The queue wait of the next attempt starts when it becomes due, not at the failure.
    assert job.queued_at == OrmQ.objects.get().lock


def take_like_a_cluster(row: OrmQ, taken_at, retry: int) -> None:
    """What django-q2's ORM broker does when a cluster takes a task: lock the row for `retry` seconds."""
    OrmQ.objects.filter(pk=row.pk).update(lock=taken_at + timedelta(seconds=retry))


def test_queued_jobs_a_lost_cluster_had_taken_are_pushed_again_and_delayed_ones_are_left(alice, settings):
    stale_for = timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 1)
    lost, _ = jobs.enqueue("system.noop", user=alice)
    fresh, _ = jobs.enqueue("system.noop", params={"n": 2}, user=alice)
    backing_off, _ = jobs.enqueue("test.flaky", user=alice)
    claimed = jobs.claim(backing_off.pk)
    assert jobs.fail_or_retry(claimed, "upstream away", retry_after=600)
    rows = {row.task["args"][0]: row for row in OrmQ.objects.all()}
    # A cluster took the first task long ago and died; a live one took the second just now.
    Job.objects.filter(pk=lost.pk).update(queued_at=timezone.now() - 2 * stale_for)
    retry = settings.Q_CLUSTER["retry"]
    take_like_a_cluster(rows[lost.pk], timezone.now() - stale_for, retry)
    take_like_a_cluster(rows[fresh.pk], timezone.now(), retry)

    assert reaper.reap_stale_jobs() == 1
    again = [row for row in OrmQ.objects.all() if row.task["args"][0] == lost.pk and row.pk != rows[lost.pk].pk]
    assert len(again) == 1
    assert OrmQ.objects.filter(pk=rows[backing_off.pk].pk).exists()


def test_a_pipeline_meeting_an_identical_active_job_still_runs_its_later_stages(alice, library_root):
    from offload.models import Library, MediaItem

    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    manual, _ = jobs.enqueue("media.probe", target=item, user=alice)
    claimed = jobs.claim(manual.pk)  # the worker's copy, read before the scan comes by
    assert claimed is not None
    # What a scan queues for a new file: the probe, then enrichment and thumbnails.
    stage, created = jobs.enqueue("media.probe", target=item, user=alice, then=["media.enrich", "media.thumbnail"])
    assert (stage.pk, created) == (manual.pk, False)
    assert jobs.succeed(claimed, {"probed": True})
    assert set(Job.objects.exclude(pk=manual.pk).values_list("kind", flat=True)) == {"media.enrich", "media.thumbnail"}


def test_stages_added_to_a_job_that_just_succeeded_are_queued_at_once(alice, library_root):
    from offload.models import Library, MediaItem

    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    probe, _ = jobs.enqueue("media.probe", target=item, user=alice)
    # The worker finished the probe between the pipeline's look at it and its merge.
    assert jobs.succeed(jobs.claim(probe.pk), {"probed": True})
    transitions._add_stages(probe, ["media.enrich", "media.thumbnail"])
    assert set(Job.objects.exclude(pk=probe.pk).values_list("kind", flat=True)) == {"media.enrich", "media.thumbnail"}


def test_events_past_their_retention_are_pruned_by_an_hourly_schedule(alice, settings):
    from django.core.management import call_command
    from django_q.models import Schedule

    from offload.jobs.events import prune_events

    settings.OFFLOAD_EVENT_RETENTION_HOURS = 24
    old, _ = jobs.enqueue("system.noop", params={"n": 1}, user=alice)
    recent, _ = jobs.enqueue("system.noop", params={"n": 2}, user=alice)
    JobEvent.objects.filter(job=old).update(created_at=timezone.now() - timedelta(hours=25))
    assert prune_events() == 1
    assert list(JobEvent.objects.values_list("job_id", flat=True)) == [recent.pk]

    call_command("schedules")
    schedule = Schedule.objects.get(func="offload.jobs.events.prune_events")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.HOURLY, -1)


def test_events_reach_the_websockets_only_once_their_transaction_commits(
    alice, monkeypatch, django_capture_on_commit_callbacks
):
    from django.db import transaction

    from offload.notifications import publisher

    published = []
    monkeypatch.setattr(publisher, "publish_job_event", lambda seq, event, user_id, payload: published.append(event))

    class Abandon(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Abandon), transaction.atomic():
        jobs.enqueue("system.noop", params={"n": 1}, user=alice)
        raise Abandon
    assert published == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        jobs.enqueue("system.noop", params={"n": 2}, user=alice)
        assert published == []  # written, not yet committed
    assert callbacks and published == ["queued"]


def test_a_job_whose_twin_is_active_is_not_inserted_and_nothing_is_left_half_written(alice):
    from offload.jobs.identity import new_job

    first, _ = jobs.enqueue("system.noop", user=alice)
    twin = new_job("system.noop", ("", 0), {}, first.params_hash, alice, "", None, first.priority)
    assert Job.objects.insert_unless_taken(twin) is None
    assert twin.pk is None
    assert list(Job.objects.values_list("pk", flat=True)) == [first.pk]


def test_only_the_attempt_that_holds_a_job_changes_it_and_it_gets_the_row_back(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    first = jobs.claim(job.pk)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    second = jobs.claim(job.pk)  # a redelivery took the job over from the first attempt
    assert Job.objects.for_attempt(first).update_returning(progress=10.0) is None
    row = Job.objects.for_attempt(second).update_returning(into=second, progress=20.0)
    assert row is second and (second.progress, second.attempts) == (20.0, 2)
    assert Job.objects.get(pk=job.pk).progress == 20.0


def test_the_runner_hands_a_kind_its_target_once_and_fails_a_job_whose_target_is_gone(alice, library_root):
    from offload.models import Library, MediaItem

    seen = []

    def run_seeing(job, item, run):
        seen.append((item, item.library.name))
        return {"item": item.pk}

    library = Library.objects.create(name="Alice's films", path=str(library_root), owner=alice)
    kept = MediaItem.objects.create(library=library, relative_path="kept.mp4")
    gone = MediaItem.objects.create(library=library, relative_path="gone.mp4")
    with kinds_for_tests.registered(kinds.JobKind("test.seeing", run_seeing, target_type="media", internal=True)):
        ran, _ = jobs.enqueue("test.seeing", target=kept, user=alice)
        failed, _ = jobs.enqueue("test.seeing", target=gone, user=alice)
        gone.delete()
        execute(ran.pk)
        execute(failed.pk)
    assert seen == [(kept, "Alice's films")]
    failed.refresh_from_db()
    assert (failed.status, failed.error) == (JobStatus.FAILED, "The media item no longer exists.")
