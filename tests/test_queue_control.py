"""Pause, resume and concurrency caps per kind: state in the database, applied where a worker picks a job up."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from offload import jobs
from offload.jobs import control, reaper
from offload.jobs.queue import PARKED_TASK
from offload.models import Job, JobStatus, QueueControl
from tests.support.cluster import wait_for
from tests.support.jobrunner import drain, run_next


def sleeper(user, n: int, seconds: float = 0.0) -> Job:
    return jobs.enqueue("system.sleep", params={"seconds": seconds, "n": n}, user=user)[0]


def noop(user, n: int) -> Job:
    return jobs.enqueue("system.noop", params={"n": n}, user=user)[0]


def rows_of(job: Job) -> list[OrmQ]:
    return [row for row in OrmQ.objects.all() if row.task["args"][0] == job.pk]


def test_a_paused_kinds_new_job_is_accepted_and_waits_without_spending_an_attempt(staff):
    control.pause("system.noop")
    job = noop(staff, 1)
    other = sleeper(staff, 1)
    drain()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.task_id) == (JobStatus.QUEUED, 0, PARKED_TASK)
    assert not rows_of(job)
    # Other kinds run on.
    assert Job.objects.get(pk=other.pk).status == JobStatus.SUCCEEDED


def test_resume_runs_the_parked_jobs_in_queue_order(staff):
    control.pause("system.noop")
    queued = [noop(staff, n) for n in range(4)]
    drain()
    assert set(Job.objects.filter(pk__in=[j.pk for j in queued]).values_list("status", flat=True)) == {"queued"}
    control.resume("system.noop")
    order = []
    while run_next():
        order += list(Job.objects.filter(status=JobStatus.SUCCEEDED).exclude(pk__in=order).values_list("pk", flat=True))
    assert order == [j.pk for j in queued]
    assert all(Job.objects.get(pk=j.pk).attempts == 1 for j in queued)


def test_a_job_a_person_asked_for_goes_first_when_its_kind_resumes(staff):
    control.pause("system.noop")
    backlog = [noop(staff, n) for n in range(3)]
    person = jobs.enqueue("system.noop", params={"n": 99}, user=staff, priority=1)[0]
    drain()
    control.resume("system.noop")
    run_next()
    assert Job.objects.get(pk=person.pk).status == JobStatus.SUCCEEDED
    assert set(Job.objects.filter(pk__in=[j.pk for j in backlog]).values_list("status", flat=True)) == {"queued"}


def test_a_running_job_finishes_when_its_kind_is_paused(staff):
    job = noop(staff, 1)
    claimed, _ = control.pick_up(job.pk)
    control.pause("system.noop")
    assert jobs.succeed(claimed, {"ok": True})
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_a_parked_job_is_never_reaped(staff, settings):
    control.pause("system.noop")
    job = noop(staff, 1)
    drain()
    long_ago = timezone.now() - timedelta(seconds=10 * settings.OFFLOAD_JOB_STALE_SECONDS)
    Job.objects.filter(pk=job.pk).update(queued_at=long_ago)
    assert reaper.reap_stale_jobs() == 0
    job.refresh_from_db()
    assert (job.status, job.attempts, job.task_id) == (JobStatus.QUEUED, 0, PARKED_TASK)


def test_a_parked_job_can_be_cancelled(staff):
    control.pause("system.noop")
    job = noop(staff, 1)
    drain()
    assert jobs.cancel(job, staff).status == JobStatus.CANCELLED
    control.resume("system.noop")
    assert not OrmQ.objects.exists()


def test_pausing_an_unknown_kind_is_refused():
    with pytest.raises(jobs.UnknownJobKind):
        control.pause("media.nonsense")


def test_a_job_finding_its_kinds_cap_full_goes_back_without_spending_an_attempt(staff, settings):
    control.set_concurrency("system.noop", 1)
    first, second = noop(staff, 1), noop(staff, 2)
    running, _ = control.pick_up(first.pk)
    assert running is not None
    (row,) = rows_of(second)
    assert control.pick_up(second.pk) == (None, control.HELD_OUTCOME)
    second.refresh_from_db()
    assert (second.status, second.attempts) == (JobStatus.QUEUED, 0)
    # Its task comes back a moment later, on a new queue row.
    again = [r for r in rows_of(second) if r.pk != row.pk]
    assert len(again) == 1 and again[0].lock > timezone.now()
    # The cap frees up: the next delivery claims it.
    jobs.succeed(running, None)
    claimed, _ = control.pick_up(second.pk)
    assert claimed is not None and claimed.attempts == 1


def test_raising_a_cap_takes_effect_on_the_next_pick_up(staff):
    control.set_concurrency("system.noop", 1)
    first, second = noop(staff, 1), noop(staff, 2)
    control.pick_up(first.pk)
    assert control.pick_up(second.pk)[0] is None
    control.set_concurrency("system.noop", 2)
    assert control.pick_up(second.pk)[0] is not None
    control.set_concurrency("system.noop", None)
    assert QueueControl.objects.get(kind="system.noop").concurrency is None


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        control.set_concurrency("system.noop", 0)


@pytest.mark.slow
def test_pause_resume_and_a_cap_with_real_clusters(qcluster, staff):
    default = qcluster()
    control.pause("system.noop")
    parked = noop(staff, 1)
    ran = sleeper(staff, 1, seconds=0.1)
    wait_for(lambda: Job.objects.get(pk=ran.pk).status == JobStatus.SUCCEEDED, what="the sleeper", cluster=default)
    wait_for(lambda: Job.objects.get(pk=parked.pk).task_id == PARKED_TASK, what="the parking", cluster=default)
    assert Job.objects.get(pk=parked.pk).attempts == 0
    control.resume("system.noop")
    wait_for(lambda: Job.objects.get(pk=parked.pk).status == JobStatus.SUCCEEDED, what="the resumed", cluster=default)

    # A cap of 1 on a lane of 2 workers: the second sleeper is put back while the first runs.
    control.set_concurrency("system.sleep", 1)
    long_ones = [sleeper(staff, n, seconds=120) for n in (2, 3)]
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in long_ones], status=JobStatus.RUNNING).count() == 1,
        what="one sleeper running",
        cluster=default,
    )
    (waiting,) = Job.objects.filter(pk__in=[j.pk for j in long_ones], status=JobStatus.QUEUED)
    first_task = waiting.task_id
    wait_for(lambda: Job.objects.get(pk=waiting.pk).task_id != first_task, what="the put-back", cluster=default)
    assert Job.objects.get(pk=waiting.pk).attempts == 0
    # Raising the cap needs no restart.
    control.set_concurrency("system.sleep", 2)
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in long_ones], status=JobStatus.RUNNING).count() == 2,
        what="both sleepers running",
        cluster=default,
    )
    for job in long_ones:
        jobs.cancel(job, staff)


@pytest.mark.slow
def test_a_pause_survives_a_restart_of_every_cluster(qcluster, staff):
    control.pause("system.noop")
    first = qcluster()
    parked = noop(staff, 1)
    wait_for(lambda: Job.objects.get(pk=parked.pk).task_id == PARKED_TASK, what="the parking", cluster=first)
    first.kill()
    second = qcluster()
    # The new cluster runs other work, and leaves the paused kind's job waiting.
    other = sleeper(staff, 1, seconds=0.1)
    wait_for(lambda: Job.objects.get(pk=other.pk).status == JobStatus.SUCCEEDED, what="other work", cluster=second)
    later = noop(staff, 2)
    wait_for(lambda: Job.objects.get(pk=later.pk).task_id == PARKED_TASK, what="the new job parked", cluster=second)
    assert Job.objects.get(pk=parked.pk).attempts == 0
    control.resume("system.noop")
    wait_for(
        lambda: Job.objects.filter(pk__in=[parked.pk, later.pk], status=JobStatus.SUCCEEDED).count() == 2,
        what="both to run once resumed",
        cluster=second,
    )
