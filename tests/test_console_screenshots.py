"""Every operations page this console changed, in a real browser at 1,280 and 800 px: nothing
overflows sideways, and a screenshot of each is saved for a person to look at."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from offload import jobs
from offload.jobs.schedules import record_run, sync_schedules
from offload.models import Job, JobStatus, Library, MediaItem, QueueSample, Rendition
from tests.support.browser import SCREENSHOTS, chromium, log_in, screenshot
from tests.support.jobrows import make_job

pytestmark = pytest.mark.slow

WIDTHS = (1280, 800)


def overflow(browser) -> int:
    """How many pixels the page, or a list's table, is wider than its room (0: no sideways scrolling)."""
    return browser.execute_script(
        "var results = document.querySelector('#changelist .results');"
        "return Math.max(document.documentElement.scrollWidth - window.innerWidth,"
        " results ? results.scrollWidth - results.clientWidth : 0);"
    )


@pytest.fixture
def busy_console(alice, staff, library_root, reporting_cluster):
    """A library with a titled item and renditions, a failed and a deferred-then-cancelled job, schedules with runs."""
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    item = MediaItem.objects.create(
        library=library,
        relative_path="Long Feature (2009).mkv",
        title="Long Feature",
        genres=["Drama"],
        enriched_at=timezone.now(),
    )
    Rendition.objects.create(
        item=item, profile="hls-720p", path=f"renditions/{item.pk}/hls/index.m3u8", size=9_000_000, duration=30.0
    )
    failed, _ = jobs.enqueue("media.probe", target=item, user=alice)
    jobs.fail(jobs.claim(failed.pk), "ffprobe could not read the file: Invalid data found when processing input")
    waited, _ = jobs.enqueue("media.thumbnail", target=item, user=alice)
    jobs.defer(jobs.claim(waited.pk), "the thumbnailer is busy", delay=30)
    jobs.cancel(Job.objects.get(pk=waited.pk), staff)
    make_job("system.noop", JobStatus.QUEUED, queued_at=timezone.now() - timedelta(seconds=15))
    queue_history()
    sync_schedules()
    now = timezone.now()
    record_run(
        None,
        task={"group": "offload: re-queue jobs whose worker was lost", "ran_at": now, "stopped": now, "success": True},
    )
    return {"item": item, "failed": failed, "library": library}


def queue_history() -> None:
    """Two hours of per-minute queue samples for the queue-depth charts: a transcode backlog draining, probe bursts."""
    this_minute = timezone.now().replace(second=0, microsecond=0)
    for minutes_ago in range(120, 0, -1):
        at = this_minute - timedelta(minutes=minutes_ago)
        QueueSample.objects.create(at=at, kind="media.transcode", queued=max(0, minutes_ago - 60) // 4)
        QueueSample.objects.create(at=at, kind="media.probe", queued=12 if minutes_ago % 23 == 0 else 0)
        QueueSample.objects.create(at=at, kind="system.noop", queued=0)


def test_the_changed_pages_fit_at_1280_and_800_px(asgi_server, busy_console, staff):
    item, failed = busy_console["item"], busy_console["failed"]
    pages = {
        "dashboard": reverse("admin:offload_operations"),
        "job-list": reverse("admin:offload_job_changelist"),
        "job-page-failed": reverse("admin:offload_job_change", args=[failed.pk]),
        "item-page": reverse("admin:offload_mediaitem_change", args=[item.pk]),
        "schedules": reverse("admin:offload_schedules"),
        "failures": reverse("admin:offload_failures"),
        "queues": reverse("admin:offload_queues"),
    }
    server = asgi_server()
    wide = {}
    for width in WIDTHS:
        browser = chromium(width=width)
        try:
            log_in(browser, server.url, "staff", "staff-password")
            for name, path in pages.items():
                browser.get(server.url + path)
                wide[(name, width)] = overflow(browser)
                screenshot(browser, f"console-{name}-{width}")
            # The queue-depth charts side by side (or stacked at 800 px), for a closer look.
            browser.get(server.url + pages["dashboard"])
            charts = browser.find_element(By.ID, "ops-queue-depth")
            charts.screenshot(str(SCREENSHOTS / f"console-queue-depth-{width}.png"))
            # The pages a button leads to: quieting a cluster asks first; Transcode… asks for its profile.
            for name, path, button in (
                ("quiet-confirm", pages["dashboard"], 'button[value="quiet"]'),
                ("transcode-form", pages["item-page"], 'input[name="action"][value="transcode"] ~ button'),
            ):
                browser.get(server.url + path)
                browser.find_element(By.CSS_SELECTOR, button).click()
                WebDriverWait(browser, 20).until(lambda d: "Are you sure?" in d.title or "Transcode" in d.title)
                wide[(name, width)] = overflow(browser)
                screenshot(browser, f"console-{name}-{width}")
        finally:
            browser.quit()
    assert {page: px for page, px in wide.items() if px > 0} == {}
