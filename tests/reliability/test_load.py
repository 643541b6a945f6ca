"""Load: 400 job-creating requests from 50 clients at once, two workers; bench/load_jobs.py runs 2,000."""

import pytest

from tests.support.reliability.load import assert_load_consistent, prepare, run_load
from tests.support.reliability.stack import Stack

pytestmark = pytest.mark.slow


def test_400_job_requests_from_50_clients_all_finish_consistently(stack: Stack):
    plans = prepare(stack, clients=50, requests=400)
    stack.web()
    stack.qcluster(OFFLOAD_Q_WORKERS="2")
    stack.search_lane()
    report = run_load(stack.web_url, plans)
    stack.wait_for_jobs_to_settle(240)
    assert_load_consistent(stack, report)
