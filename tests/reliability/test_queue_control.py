"""Nothing lost, nothing run twice: a pause, a cap and a resume made while 50 clients send requests."""

import threading
import time

import pytest

from tests.support.reliability.load import LoadReport, assert_load_consistent, prepare, run_load
from tests.support.reliability.stack import Stack

pytestmark = pytest.mark.slow


def test_a_pause_a_cap_and_a_resume_under_load_lose_nothing_and_run_nothing_twice(stack: Stack):
    plans = prepare(stack, clients=50, requests=400)
    stack.web()
    stack.qcluster(OFFLOAD_LANE_DEFAULT_WORKERS="2")
    stack.search_lane()
    staff = stack.api("staff")
    reports: list[LoadReport] = []
    load = threading.Thread(target=lambda: reports.append(run_load(stack.web_url, plans)))

    def parked() -> int:
        return stack.db.value("SELECT count(*) FROM offload_job WHERE kind = 'media.probe' AND task_id = 'paused'")

    def running_enrichments(capped_at: object) -> int:
        # Enrichments already running when the cap came in finish as they are (it holds back
        # pick-ups, as a pause does), and two of them may run on the two workers. From then on
        # a new one starts only when none is running: those count as one, each later start as one.
        before, after = stack.db.rows(
            "SELECT count(*) FILTER (WHERE started_at < %s), count(*) FILTER (WHERE started_at >= %s)"
            " FROM offload_job WHERE kind = 'media.enrich' AND status = 'running'",
            [capped_at, capped_at],
        )[0]
        return min(before, 1) + after

    assert staff.request("POST", "/api/v1/queues/media.probe/pause/").status_code == 200
    load.start()
    # Probes asked for while paused are accepted and parked, not run.
    stack.wait_until(lambda: parked() >= 10, 120, "probes to wait while paused")
    assert stack.db.value("SELECT count(*) FROM offload_job WHERE kind = 'media.probe' AND attempts > 0") == 0
    capped = staff.request("PATCH", "/api/v1/queues/media.enrich/", json={"concurrency": 1})
    assert capped.status_code == 200, capped.text
    capped_at = stack.db.value("SELECT now()")
    load.join(600)
    assert not load.is_alive(), "the load did not finish"
    assert staff.request("POST", "/api/v1/queues/media.probe/resume/").status_code == 200
    # While the cap holds, an enrichment starts only when none runs, on any worker.
    most, seen = 0, []
    while stack.active_jobs():
        running = running_enrichments(capped_at)
        if running > most:
            most = running
            seen = stack.db.rows(
                "SELECT id, started_at, attempts FROM offload_job WHERE kind = 'media.enrich' AND status = 'running'"
            )
        if stack.db.value("SELECT count(*) FROM offload_job WHERE kind = 'media.enrich' AND status = 'queued'") < 20:
            break
        time.sleep(0.05)
    assert most <= 1, f"capped at {capped_at}, running together: {seen}"
    # The cap lifted under load: the rest drains on both workers.
    assert staff.request("PATCH", "/api/v1/queues/media.enrich/", json={"concurrency": None}).status_code == 200
    stack.wait_for_jobs_to_settle(300)
    (report,) = reports
    assert_load_consistent(stack, report)
