"""A job's attempts as history: each keeps its times, worker, outcome, error and log tail."""

import os
import socket
from contextlib import nullcontext
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from offload import jobs
from offload.jobs import control, kinds, reaper, runner, transitions
from offload.jobs.runner import JobRun
from offload.models import Job, JobEvent, JobStatus
from tests.support import kinds_for_tests
from tests.support.jobrunner import drain
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TEST_KINDS = (
    kinds.JobKind("test.broken", kinds_for_tests.run_broken, internal=True),
    kinds.JobKind("test.flaky", kinds_for_tests.run_flaky, internal=True),
)

# On PostgreSQL outside a transaction the worker's transitions are one statement each; inside
# one they are the ORM's. Both must leave the same history.
FORMS = {"one statement": nullcontext, "transaction": transaction.atomic}


@pytest.fixture(autouse=True)
def test_kinds():
    with kinds_for_tests.registered(*TEST_KINDS):
        yield


def history(job: Job) -> list[tuple]:
    return [
        (a.number, a.outcome, a.error, a.host, a.pid, a.started_at is not None, a.finished_at is not None)
        for a in job.attempt_history.order_by("number")
    ]


def go_stale(job: Job, settings) -> None:
    """The worker died: its heartbeat stops and ages past OFFLOAD_JOB_STALE_SECONDS."""
    stale = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale)


@pytest.mark.parametrize("form", FORMS)
def test_each_attempt_keeps_its_worker_outcome_and_error_in_either_form(alice, form):
    job, _ = jobs.enqueue("test.flaky", user=alice)
    here = (socket.gethostname(), os.getpid())
    with FORMS[form]():
        first = jobs.claim(job.pk) if form == "transaction" else transitions.claim_in_one_statement(job.pk, "FALSE")[0]
    with FORMS[form]():
        assert jobs.fail_or_retry(first, "upstream answered 503")
    with FORMS[form]():
        second = jobs.claim(job.pk) if form == "transaction" else transitions.claim_in_one_statement(job.pk, "FALSE")[0]
    JobRun(second).record_log(["frame=100", "muxing overhead: 0.1%"])
    with FORMS[form]():
        assert jobs.succeed(second, {"ok": True})
    assert history(job) == [
        (1, "retrying", "upstream answered 503", *here, True, True),
        (2, "succeeded", "", *here, True, True),
    ]
    assert job.attempt_history.get(number=2).log_tail == "frame=100\nmuxing overhead: 0.1%"


def test_a_retried_job_keeps_the_first_runs_attempt_and_numbers_on(alice):
    job, _ = jobs.enqueue("test.broken", user=alice)
    drain()
    first = job.attempt_history.get()
    jobs.retry(job, alice)
    drain()
    job.refresh_from_db()
    assert [(a.number, a.outcome) for a in job.attempt_history.all()] == [(1, "failed"), (2, "failed")]
    # The first run's times are its own, not overwritten by the second.
    assert job.attempt_history.get(number=1).started_at == first.started_at
    assert job.attempt_history.get(number=1).finished_at == first.finished_at
    assert job.attempt_history.get(number=2).started_at == job.started_at


def test_a_lost_worker_is_requeued_with_an_attempt_lost_event_and_its_progress_dropped(alice, settings):
    job, _ = jobs.enqueue("system.noop", user=alice)
    claimed, _ = control.pick_up(job.pk)
    assert jobs.heartbeat(claimed, progress=25.0, partial_result={"eta_seconds": 30})
    go_stale(job, settings)

    assert reaper.requeue_lost_jobs() == [job.pk]

    job.refresh_from_db()
    worker = f"{socket.gethostname()}/{os.getpid()}"
    assert (job.status, job.progress, job.result) == (JobStatus.QUEUED, None, None)
    assert job.error == f"Attempt 1 lost on {worker} (its worker stopped beating), re-queued."
    lost_event = JobEvent.objects.filter(job=job).order_by("-seq").first()
    assert (lost_event.event, lost_event.payload["status"], lost_event.payload["error"]) == (
        "queued",
        "queued",
        job.error,
    )
    assert history(job)[0][:3] == (1, "lost", job.error)
    # The lost attempt, were it only slow, can neither beat nor finish the job any more.
    assert not jobs.heartbeat(claimed, progress=30.0)
    assert not jobs.succeed(claimed, {"late": True})

    drain()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert [a.outcome for a in job.attempt_history.all()] == ["lost", "succeeded"]
    started = JobEvent.objects.filter(job=job, event="started").order_by("-seq").first()
    assert started.payload["progress"] is None


def test_a_fresh_running_job_is_not_taken_for_lost(alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    control.pick_up(job.pk)
    assert reaper.requeue_lost_jobs() == []
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def run_until_beaten_twice(job, target, run):
    """Hold the attempt until the process's heartbeat thread has beaten for it twice."""
    beats = set()

    def beaten_twice() -> bool:
        beats.add(Job.objects.values_list("heartbeat_at", flat=True).get(pk=job.pk))
        return len(beats) >= 3

    wait_for(beaten_twice, 30, "two heartbeats", interval=0.05)
    return {"beats": len(beats) - 1}


def test_a_job_run_outside_a_cluster_beats_for_itself_and_takes_over_no_other_job(alice, settings):
    # A process that runs a job in passing (a test, a benchmark) is not one of the cluster's workers:
    # it keeps its own job alive, and leaves other workers' lost jobs to the workers and the reaper.
    settings.OFFLOAD_JOB_STALE_SECONDS = 2
    lost, _ = jobs.enqueue("system.noop", user=alice)
    control.pick_up(lost.pk)
    go_stale(lost, settings)
    with kinds_for_tests.registered(kinds.JobKind("test.beaten", run_until_beaten_twice, internal=True)):
        job, _ = jobs.enqueue("test.beaten", user=alice)
        assert runner.execute(job.pk) == "succeeded"
    assert Job.objects.get(pk=job.pk).result == {"beats": 2}
    # The heartbeat thread finished a whole round (the beat and whatever follows it) before its second beat.
    assert Job.objects.get(pk=lost.pk).status == JobStatus.RUNNING


@pytest.mark.parametrize("form", FORMS)
def test_a_redelivered_task_taking_over_a_stale_job_closes_the_lost_attempt_in_either_form(alice, settings, form):
    job, _ = jobs.enqueue("system.noop", user=alice)
    claimed, _ = control.pick_up(job.pk)
    jobs.heartbeat(claimed, progress=60.0)
    go_stale(job, settings)
    with FORMS[form]():
        again = jobs.claim(job.pk) if form == "transaction" else transitions.claim_in_one_statement(job.pk, "FALSE")[0]
    assert (again.attempts, again.progress) == (2, None)
    assert [(a.number, a.outcome, a.finished_at is not None) for a in job.attempt_history.all()] == [
        (1, "lost", True),
        (2, "running", False),
    ]
