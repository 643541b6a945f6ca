"""Progress is not history: the job's row takes it every second, the event log every few seconds."""

import pytest

from offload import jobs
from offload.jobs import control, runner
from offload.jobs.runner import JobRun
from offload.models import Job, JobEvent

pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(runner.time, "monotonic", clock)
    return clock


@pytest.fixture
def run(alice) -> JobRun:
    job, _ = jobs.enqueue("system.noop", user=alice)
    claimed, _ = control.pick_up(job.pk)
    return JobRun(claimed)


def test_progress_reaches_the_row_every_second_and_the_log_every_five(clock, run):
    job = run.job
    logged, on_row = [], []
    for second in range(12):
        clock.now = 1000.0 + second + 0.01
        run.progress(second * 5.0)
        on_row.append(Job.objects.get(pk=job.pk).progress)
        logged = [e.payload["progress"] for e in JobEvent.objects.filter(job=job, event="progress").order_by("seq")]
    # Every second on the row, as a page or a GET reads it.
    assert on_row == [second * 5.0 for second in range(12)]
    # The first, then one each five seconds, in the log and on the websocket.
    assert logged == [0.0, 25.0, 50.0]


def test_a_complete_or_forced_progress_is_always_logged(clock, run):
    job = run.job
    run.progress(10.0)
    clock.now += 0.1
    run.progress(20.0, force=True)
    clock.now += 1.5
    run.progress(100.0)
    logged = [e.payload["progress"] for e in JobEvent.objects.filter(job=job, event="progress").order_by("seq")]
    assert logged == [10.0, 20.0, 100.0]
