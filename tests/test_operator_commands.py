"""`manage.py jobs`, `manage.py queues` and `manage.py scan` for operators in a terminal."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from offload import jobs
from offload.models import Job, JobPriority, JobStatus, Library, QueueControl
from tests.support.cluster import wait_for
from tests.support.jobrunner import drain
from tests.support.media import make_video


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def noop(user, n: int) -> Job:
    return jobs.enqueue("system.noop", params={"n": n}, user=user)[0]


def failed(user, n: int, kind: str = "system.noop") -> Job:
    job = noop(user, n) if kind == "system.noop" else jobs.enqueue(kind, params={"n": n}, user=user)[0]
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="It broke.\nsecond line")
    return job


def test_jobs_list_filters_by_status_and_kind_and_limits(staff):
    done = noop(staff, 1)
    drain()
    waiting = noop(staff, 2)
    broken = failed(staff, 3)
    listing = run("jobs", "list", "--status", "failed")
    assert f"{broken.pk}" in listing and "It broke." in listing and "second line" not in listing
    assert f" {done.pk}  " not in listing and f" {waiting.pk}  " not in listing
    by_kind = run("jobs", "list", "--kind", "system.noop", "--limit", "1")
    assert len(by_kind.strip().splitlines()) == 2  # the header and the newest job
    with pytest.raises(CommandError, match="Unknown kind"):
        run("jobs", "list", "--kind", "nope")


def test_jobs_retry_one_or_every_failed_one_of_a_kind(staff):
    first, second = failed(staff, 1), failed(staff, 2)
    other = failed(staff, 3, kind="system.sleep")
    assert "queued again" in run("jobs", "retry", str(first.pk))
    assert Job.objects.get(pk=first.pk).status == JobStatus.QUEUED
    # A person at a terminal asked: it goes before the backlog.
    assert Job.objects.get(pk=first.pk).priority == JobPriority.PERSON
    out = run("jobs", "retry", "--failed", "--kind", "system.noop")
    assert "1 job retried" in out
    assert Job.objects.get(pk=second.pk).status == JobStatus.QUEUED
    assert Job.objects.get(pk=other.pk).status == JobStatus.FAILED
    with pytest.raises(CommandError, match="only failed or cancelled"):
        run("jobs", "retry", str(first.pk))
    with pytest.raises(CommandError, match="Give a job id, or --failed"):
        run("jobs", "retry")


def test_jobs_cancel(staff):
    job = noop(staff, 1)
    assert "cancelled" in run("jobs", "cancel", str(job.pk))
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    with pytest.raises(CommandError, match="already cancelled"):
        run("jobs", "cancel", str(job.pk))
    with pytest.raises(CommandError, match="No job 999999"):
        run("jobs", "cancel", "999999")


def test_queues_shows_every_kind_and_pauses_resumes_and_caps(staff):
    table = run("queues")
    assert "media.transcode" in table and "media " in table
    assert "paused" in run("queues", "pause", "system.noop")
    assert QueueControl.objects.get(kind="system.noop").paused
    job = noop(staff, 1)
    drain()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    run("queues", "resume", "system.noop")
    drain()
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED
    assert "at most 1 at a time" in run("queues", "--cap", "media.transcode", "1")
    assert QueueControl.objects.get(kind="media.transcode").concurrency == 1
    run("queues", "--cap", "media.transcode", "none")
    assert QueueControl.objects.get(kind="media.transcode").concurrency is None


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("pause",), "Which kind"),
        (("pause", "nope"), "Unknown kind"),
        (("--cap", "media.transcode", "0"), "at least 1"),
        (("--cap", "media.transcode", "lots"), "whole number"),
    ],
)
def test_queues_refuses_bad_input(args, error, db):
    with pytest.raises(CommandError, match=error):
        run("queues", *args)
    assert not QueueControl.objects.filter(paused=True).exists()


def test_scan_queues_a_scan_a_person_asked_for(alice, library_root):
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    out = run("scan", "Films")
    job = Job.objects.get(kind="library.scan")
    assert f"job {job.pk}" in out
    assert (job.target_id, job.priority, job.requested_by) == (library.pk, JobPriority.PERSON, alice)
    assert "already active" in run("scan", str(library.pk))
    with pytest.raises(CommandError, match="No library"):
        run("scan", "Nope")


def test_scan_wait_follows_the_scan_and_its_pipeline_with_a_progress_bar(qcluster, alice, library_root):
    for n in range(3):
        make_video(library_root / f"clip{n}.mp4")
    Library.objects.create(name="Films", path=str(library_root), owner=alice)
    cluster = qcluster()
    out = run("scan", "Films", "--wait", "--interval", "0.1")
    assert "[" + "#" * 30 + "] 100%  scan succeeded" in out
    assert "pipeline: 9 of 9 jobs done" in out
    wait_for(lambda: not Job.objects.filter(status__in=["queued", "running"]).exists(), cluster=cluster)


def test_scan_wait_fails_when_the_scan_fails(qcluster, alice, library_root):
    gone = library_root / "gone"
    gone.mkdir()
    Library.objects.create(name="Films", path=str(gone), owner=alice)
    gone.rmdir()
    qcluster()
    with pytest.raises(CommandError, match="The scan failed"):
        run("scan", "Films", "--wait", "--interval", "0.1")
