"""A worker killed under a watching page: the job page and the list say "worker lost" within
seconds, and the take-over shows as its own event and a lost attempt, in a real browser."""

import pytest
from django.urls import reverse

from offload import jobs
from offload.models import Job, JobStatus
from tests.support.browser import chromium, log_in, screenshot
from tests.support.cluster import wait_for

pytestmark = pytest.mark.slow

# Short beats so the test waits seconds, not the production 20 s: a beat every second, "worker
# lost" after three missed, the take-over at four.
FAST = {"OFFLOAD_JOB_STALE_SECONDS": "4"}


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def shows(browser, selector: str) -> bool:
    return browser.execute_script(
        "var el = document.querySelector(arguments[0]);"
        "return !!el && !el.hidden && el.getBoundingClientRect().width > 0;",
        selector,
    )


def page_text(browser) -> str:
    return browser.execute_script("return document.querySelector('#content-main').innerText")


def test_a_killed_workers_job_shows_worker_lost_then_its_take_over(
    qcluster, asgi_server, browser, alice, staff, settings
):
    settings.OFFLOAD_JOB_STALE_SECONDS = 4
    server = asgi_server(**FAST)
    first = qcluster(**FAST)
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 8}, user=alice)
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, progress__gt=0).exists(),
        what="the job to make progress",
        cluster=first,
    )
    log_in(browser, server.url, "staff", "staff-password")
    browser.get(server.url + reverse("admin:offload_job_change", args=[job.pk]))
    lost = f'.offload-heartbeat[data-job="{job.pk}"] .offload-lost'
    assert "heartbeat" in page_text(browser)
    assert not shows(browser, lost)

    first.kill()
    wait_for(lambda: shows(browser, lost), timeout=15, what='the page to say "worker lost"')
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING  # a badge, not a status
    browser.set_window_size(1280, 900)
    screenshot(browser, "job-worker-lost-1280")
    browser.set_window_size(800, 900)
    screenshot(browser, "job-worker-lost-800")

    browser.get(server.url + reverse("admin:offload_job_changelist"))
    wait_for(lambda: shows(browser, lost), timeout=15, what='the list to say "worker lost"')
    browser.set_window_size(1280, 900)
    screenshot(browser, "job-list-worker-lost-1280")

    browser.get(server.url + reverse("admin:offload_job_change", args=[job.pk]))
    second = qcluster(**FAST)
    wait_for(lambda: "lost" in page_text(browser) and "re-queued" in page_text(browser), timeout=30,
             what="the take-over in the timeline", cluster=second)  # fmt: skip
    wait_for(
        lambda: (
            browser.execute_script(
                f"return document.querySelector('.offload-status[data-job=\"{job.pk}\"]').textContent"
            )
            == "succeeded"
        ),
        timeout=40,
        what="the second attempt to finish",
        cluster=second,
    )
    wait_for(lambda: "succeeded" in page_text(browser).split("Every attempt")[-1], timeout=15, what="the re-read")
    text = page_text(browser)
    assert "Attempt 1 lost on " in text
    assert not shows(browser, lost)
    browser.set_window_size(1280, 900)
    screenshot(browser, "job-taken-over-1280")
    browser.set_window_size(800, 900)
    screenshot(browser, "job-taken-over-800")
