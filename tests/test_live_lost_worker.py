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
    lost = f'.offload-heartbeat[data-beat-of="{job.pk}"] .offload-lost'
    assert "heartbeat" in page_text(browser)
    assert not shows(browser, lost)

    first.kill()
    wait_for(lambda: shows(browser, lost), timeout=15, what='the page to say "worker lost"')
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING  # a badge, not a status
    browser.set_window_size(1280, 900)
    screenshot(browser, "job-worker-lost-1280")
    browser.set_window_size(800, 900)
    screenshot(browser, "job-worker-lost-800")

    browser.set_window_size(1280, 900)
    browser.get(server.url + reverse("admin:offload_job_changelist"))
    wait_for(lambda: shows(browser, lost), timeout=15, what='the list to say "worker lost"')
    screenshot(browser, "job-list-worker-lost-1280")
    # Every column, Finished the last, fits at 1,280 px with the badge in the row.
    assert shows(browser, "#result_list th.column-finished_display")
    assert (
        browser.execute_script(
            "var t = document.querySelector('#changelist .results'); return t.scrollWidth - t.clientWidth"
        )
        <= 0
    )

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


def test_the_dashboard_and_job_list_show_attention_and_targets_at_1280_and_800(
    asgi_server, browser, alice, staff, library_root, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from offload.jobs import control
    from offload.models import Library, MediaItem

    # A worker is presumed lost after three beats and its job taken over after four: with a
    # 2-minute stale age, a beat 100 s old stays "lost" (not yet re-queued) for 20 s however
    # slowly the page comes up, here and in the server.
    stale = 120
    settings.OFFLOAD_JOB_STALE_SECONDS = stale
    server = asgi_server(OFFLOAD_JOB_STALE_SECONDS=str(stale))
    films = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    feature = MediaItem.objects.create(library=films, relative_path="long.feature.mkv", title="Long Feature")
    running, _ = jobs.enqueue("media.probe", target=feature, user=alice)
    control.pick_up(running.pk)
    Job.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=stale - 20))
    control.pause("media.thumbnail")
    jobs.enqueue("media.thumbnail", target=feature, user=alice)
    log_in(browser, server.url, "staff", "staff-password")
    for width in (1280, 800):
        browser.set_window_size(width, 900)
        browser.get(server.url + reverse("admin:offload_operations"))
        wait_for(lambda: shows(browser, "#offload-live-state.offload-live-on"), timeout=20, what="the live indicator")
        # What needs attention is the first thing on the page, inside the first screen.
        top = browser.execute_script("return document.getElementById('ops-attention').getBoundingClientRect().top")
        assert top < 400
        assert browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 0
        attention = browser.execute_script("return document.getElementById('ops-attention').innerText")
        assert "whose worker is lost" in attention and "paused: an operator paused media.thumbnail" in attention
        screenshot(browser, f"dashboard-attention-{width}")
        browser.set_window_size(width, 900)
        browser.get(server.url + reverse("admin:offload_job_changelist"))
        assert shows(browser, f'#result_list .field-target_link a[title="media {feature.pk}"]')
        assert browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 0
        screenshot(browser, f"job-list-targets-{width}")


def test_the_job_lists_counters_follow_the_rows_it_takes_in(asgi_server, browser, alice, staff):
    server = asgi_server()
    jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    log_in(browser, server.url, "staff", "staff-password")
    browser.get(server.url + reverse("admin:offload_job_changelist"))
    wait_for(lambda: shows(browser, "#offload-live-state.offload-live-on"), timeout=20, what="the live indicator")

    def counters() -> tuple[str, str, str, int]:
        return tuple(
            browser.execute_script(
                "return [document.querySelector('#toolbar .small.quiet').textContent,"
                " document.querySelector('p.paginator').textContent,"
                " document.querySelector('span.action-counter').textContent,"
                " document.querySelectorAll('#result_list tbody tr').length];"
            )
        )

    assert counters()[3] == 1
    for n in range(2, 5):
        jobs.enqueue("system.sleep", params={"seconds": n}, user=alice)
    wait_for(lambda: counters()[3] == 4, timeout=20, what="the new rows")
    wait_for(lambda: "4 results" in counters()[0], timeout=20, what="the result count")
    _, paginator, selected, _ = counters()
    assert "4 jobs" in " ".join(paginator.split())
    assert selected == "0 of 4 selected"
    browser.set_window_size(1280, 900)
    screenshot(browser, "job-list-live-counters-1280")


def test_the_live_indicator_follows_a_server_restart_and_the_page_catches_up(asgi_server, browser, alice, staff):
    server = asgi_server()
    first, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    log_in(browser, server.url, "staff", "staff-password")
    browser.get(server.url + reverse("admin:offload_job_changelist"))
    indicator = "#offload-live-state"
    wait_for(lambda: shows(browser, f"{indicator}.offload-live-on"), timeout=20, what="the live indicator")
    assert browser.execute_script(f"return document.querySelector('{indicator}').textContent") == "live"

    server.stop()
    wait_for(lambda: shows(browser, f"{indicator}.offload-live-off"), timeout=20, what="the indicator to say so")
    assert browser.execute_script(f"return document.querySelector('{indicator}').textContent") == "reconnecting\u2026"
    browser.set_window_size(1280, 900)
    screenshot(browser, "job-list-reconnecting-1280")
    missed, _ = jobs.enqueue("system.sleep", params={"seconds": 2}, user=alice)  # while the page is cut off

    server.start()
    wait_for(lambda: shows(browser, f"{indicator}.offload-live-on"), timeout=40, what="the reconnect")
    wait_for(
        lambda: shows(browser, f'.offload-status[data-job="{missed.pk}"]'), timeout=20, what="the missed job's row"
    )
    assert shows(browser, f'.offload-status[data-job="{first.pk}"]')
