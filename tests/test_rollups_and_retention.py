"""The dashboard's rollups, and retention: both keep the console's cost independent of history."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from offload.admin import dashboard
from offload.jobs import retention, rollups
from offload.models import Job, JobEvent, JobRollup, JobStatus, QueueSample

NOW = datetime(2026, 5, 1, 12, 30, 30, tzinfo=UTC)


def make_job(kind="system.noop", status=JobStatus.SUCCEEDED, finished=None, waited=2.0, ran=20.0, **fields) -> Job:
    finished = finished or NOW - timedelta(minutes=5)
    started = finished - timedelta(seconds=ran)
    return Job.objects.create(
        kind=kind, status=status, params_hash=uuid.uuid4().hex, created_at=started - timedelta(seconds=waited),
        queued_at=started - timedelta(seconds=waited), started_at=started, finished_at=finished, attempts=1, **fields,
    )  # fmt: skip


def test_percentiles_read_from_histograms():
    hist = [0] * len(rollups.BUCKETS)
    hist[rollups.bucket_of(2.0)] = 90
    hist[rollups.bucket_of(100.0)] = 10
    assert rollups.percentile(hist, 0.5) == 2.5
    assert rollups.percentile(hist, 0.95) == 120
    assert rollups.percentile([0] * 4, 0.5) is None


def test_a_rollup_folds_finished_minutes_once_and_samples_the_queues(db):
    for _ in range(3):
        make_job("media.probe", waited=2.0, ran=20.0)
    make_job("media.probe", JobStatus.FAILED, error="x")
    Job.objects.create(kind="media.transcode", params_hash="q", status=JobStatus.QUEUED)
    rollups.roll_up(NOW)
    rollups.roll_up(NOW + timedelta(seconds=20))  # nothing new: nothing counted twice
    minute = JobRollup.objects.get(span="minute", kind="media.probe", status="succeeded")
    assert minute.finished == 3
    assert rollups.percentile(minute.wait_hist, 0.5) == 2.5 and rollups.percentile(minute.run_hist, 0.5) == 30
    assert JobRollup.objects.get(span="hour", kind="media.probe", status="succeeded").finished == 3
    assert JobRollup.objects.get(span="hour", kind="media.probe", status="failed").finished == 1
    sample = QueueSample.objects.get(kind="media.transcode")
    assert (sample.queued, sample.running) == (1, 0)


def test_the_dashboard_counts_rolled_up_and_live_finishes_alike(db, monkeypatch):
    make_job("media.probe", finished=NOW - timedelta(minutes=30))
    rollups.roll_up(NOW)
    # Finished after the rollup: read live from the job table.
    make_job("media.probe", finished=NOW + timedelta(seconds=10))
    # The rolled-up row is the only record of the first job once retention took it.
    Job.objects.filter(finished_at__lt=NOW - timedelta(minutes=10)).delete()
    monkeypatch.setattr(dashboard.timezone, "now", lambda: NOW + timedelta(seconds=20))
    cache.clear()
    data = dashboard.snapshot()
    assert data["throughput"]["hour"]["totals"]["succeeded"] == 2
    assert data["throughput"]["day"]["totals"]["succeeded"] == 2
    # Jobs by kind counts job rows, as the job list shows them (its tooltip says so): the pruned
    # job is in the charts' finishes, not in the table or the list.
    probe = next(row for row in data["jobs"]["rows"] if row["kind"] == "media.probe")
    listed = Job.objects.filter(kind="media.probe", status=JobStatus.SUCCEEDED).count()
    assert dict(probe["cells"])["succeeded"] == listed == 1
    (latency,) = data["latency"]["hour"]["rows"]
    assert latency["kind"] == "media.probe" and latency["count"] == 2


def test_retention_prunes_old_finishes_in_batches_and_keeps_failures_longer(db, settings):
    settings.OFFLOAD_JOB_RETENTION_DAYS = 30
    settings.OFFLOAD_FAILED_JOB_RETENTION_DAYS = 90
    settings.OFFLOAD_JOB_PRUNE_BATCH = 2
    old = [make_job(finished=NOW - timedelta(days=31)) for _ in range(5)]
    kept_failure = make_job(status=JobStatus.FAILED, finished=NOW - timedelta(days=31), error="x")
    old_failure = make_job(status=JobStatus.FAILED, finished=NOW - timedelta(days=91), error="x")
    recent = make_job(finished=NOW - timedelta(days=29))
    active = Job.objects.create(kind="system.noop", params_hash="a", status=JobStatus.QUEUED)
    JobEvent.objects.create(seq=1, job=old[0], event="succeeded", payload={})
    assert retention.prune_jobs(NOW) == 6
    assert set(Job.objects.values_list("pk", flat=True)) == {kept_failure.pk, recent.pk, active.pk}
    assert not JobEvent.objects.exists()
    assert old_failure.pk not in set(Job.objects.values_list("pk", flat=True))


@pytest.mark.parametrize("days", [0])
def test_a_retention_of_zero_keeps_jobs_for_ever(db, settings, days):
    settings.OFFLOAD_JOB_RETENTION_DAYS = days
    settings.OFFLOAD_FAILED_JOB_RETENTION_DAYS = days
    make_job(finished=NOW - timedelta(days=3650))
    assert retention.prune_jobs(NOW) == 0
    assert Job.objects.count() == 1


def test_the_dashboard_states_the_retention(client, staff, settings):
    settings.OFFLOAD_JOB_RETENTION_DAYS = 14
    settings.OFFLOAD_FAILED_JOB_RETENTION_DAYS = 60
    client.force_login(staff)
    html = client.get("/admin/operations/dashboard/").content.decode()
    assert "finished jobs are kept 14 days, failed ones 60 days" in html


def test_a_failure_stores_its_group_and_a_retry_clears_it(db, alice):
    from offload import jobs
    from offload.admin import failures
    from tests.support.jobrunner import drain
    from tests.support.kinds_for_tests import registered, run_broken

    with registered(jobs.JobKind("test.broken", run_broken, internal=True)):
        job, _ = jobs.enqueue("test.broken", user=alice)
        drain()
        job.refresh_from_db()
        exception, message = failures.classify(job.error)
        assert (job.failure_exception, job.failure_message) == (exception, message)
        assert job.failure_group == failures.fingerprint("test.broken", exception, message)
        (group,) = failures.failure_groups()
        assert group.fingerprint == job.failure_group and group.count == 1 and group.sample_ids == [job.pk]
        jobs.retry(job, alice)
        job.refresh_from_db()
        assert job.failure_group == "" and failures.failure_groups() == []
