"""The operations console in a real browser: pages resume from the seq they were rendered at,
the job list takes in new rows and changing columns, the dashboard follows events."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from offload import actions, jobs
from offload.models import Job
from tests.support.browser import chromium, log_in, screenshot
from tests.support.cluster import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def console(asgi_server, browser, staff):
    """The browser, logged in as staff on a real ASGI server; console(path) opens a page."""
    server = asgi_server()
    log_in(browser, server.url, "staff", "staff-password")

    def open_page(path: str, *, hold_socket: bool = False):
        if hold_socket:
            # The next page's socket waits for offloadRelease(): render, then an event, then connect.
            browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "window.offloadHold = true;"})
        browser.get(server.url + path)
        return browser

    return open_page


def connected(browser) -> bool:
    return browser.execute_script("return document.documentElement.getAttribute('data-offload-connected') === '1'")


def text_of(browser, selector: str) -> str:
    script = "var el = document.querySelector(arguments[0]); return el ? el.textContent : null;"
    return browser.execute_script(script, selector)


def status_is(browser, job, status: str):
    return lambda: text_of(browser, f'.offload-status[data-job="{job.pk}"]') == status


def test_an_event_between_render_and_connect_is_not_lost(console, alice, staff):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 5}, user=alice)
    browser = console(reverse("admin:offload_job_changelist"), hold_socket=True)
    status = f'.offload-status[data-job="{job.pk}"]'
    assert text_of(browser, status) == "queued"
    rendered_at = int(browser.execute_script("return document.querySelector('meta[name=offload-seq]').content"))
    # The page is rendered, its socket not yet open: the cancel lands in between.
    actions.cancel_job(staff, job)
    assert job.events.order_by("-seq").first().seq > rendered_at
    browser.execute_script("window.offloadRelease();")
    wait_for(lambda: text_of(browser, status) == "cancelled", timeout=20, what="the missed cancel to be replayed")
    finished = text_of(browser, f'.offload-field[data-job="{job.pk}"][data-field="finished_at"]')
    assert finished.endswith(" UTC") and finished.startswith(str(Job.objects.get(pk=job.pk).finished_at.year))


def test_the_job_list_takes_in_new_rows_that_match_its_filters(console, alice, staff):
    old, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    browser = console(reverse("admin:offload_job_changelist") + "?status__exact=queued")
    wait_for(lambda: connected(browser), timeout=20, what="the socket to connect")
    new, _ = jobs.enqueue("system.sleep", params={"seconds": 2}, user=alice)
    gone, _ = jobs.enqueue("system.sleep", params={"seconds": 3}, user=alice)
    actions.cancel_job(staff, gone)  # no longer queued: the filtered list leaves it out
    wait_for(status_is(browser, new, "queued"), timeout=20, what="the new row")
    rows = browser.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('#result_list tbody tr'),"
        " function (r) { return r.querySelector('[data-job]').getAttribute('data-job'); });"
    )
    # Newest first, as the page orders them; the cancelled job was never added.
    assert rows == [str(new.pk), str(old.pk)]
    # Every column that changes follows: status, tries, finished, error.
    actions.cancel_job(staff, old)
    wait_for(status_is(browser, old, "cancelled"), timeout=20, what="the cancel")
    assert text_of(browser, f'.offload-field[data-job="{old.pk}"][data-field="finished_at"]').endswith(" UTC")
    screenshot(browser, "job-list")


def some_history() -> None:
    """Finished jobs over the last day, and a few waiting: something for the charts to draw."""
    now = timezone.now()
    for minutes, kind, status, ran in (
        (3, "media.probe", "succeeded", 2), (5, "media.probe", "succeeded", 3),
        (7, "media.transcode", "succeeded", 80), (12, "media.transcode", "failed", 20),
        (40, "media.thumbnail", "succeeded", 6), (150, "library.scan", "succeeded", 30),
        (400, "media.probe", "cancelled", 1), (900, "media.transcode", "succeeded", 140),
    ):  # fmt: skip
        finished = now - timedelta(minutes=minutes)
        Job.objects.create(
            kind=kind, status=status, params_hash=uuid.uuid4().hex, queued_at=finished - timedelta(seconds=ran + 4),
            created_at=finished - timedelta(seconds=ran + 4), started_at=finished - timedelta(seconds=ran),
            finished_at=finished, attempts=1, error="ffmpeg failed" if status == "failed" else None,
        )  # fmt: skip


def test_the_dashboard_counters_follow_events(console, alice):
    some_history()
    browser = console(reverse("admin:offload_operations"))
    wait_for(lambda: connected(browser), timeout=20, what="the socket to connect")
    cell = '#ops-jobs td[data-kind="system.noop"][data-status="queued"]'
    assert text_of(browser, cell).strip() == "0"
    jobs.enqueue("system.noop", user=alice)
    wait_for(lambda: text_of(browser, cell).strip() == "1", timeout=20, what="the queued counter to move")
    screenshot(browser, "dashboard")


def overflow(browser) -> dict:
    return browser.execute_script(
        "var results = document.querySelector('#changelist .results');"
        "return {page: document.documentElement.scrollWidth - window.innerWidth,"
        " table: results.scrollWidth - results.clientWidth};"
    )


def visible_in_viewport(browser, selector: str) -> bool:
    return browser.execute_script(
        "var el = document.querySelector(arguments[0]); if (!el) { return false; }"
        "var r = el.getBoundingClientRect();"
        "return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth;",
        selector,
    )


def test_the_job_list_fits_1280_px_and_keeps_status_at_800(console, alice, staff):
    failed, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    Job.objects.filter(pk=failed.pk).update(
        status="failed",
        error="Unexpected error: OSError: [Errno 28] No space left on device: '/srv/media/output/renditions/12345'",
    )
    for n in range(2, 6):
        jobs.enqueue("system.sleep", params={"seconds": n}, user=alice)
    browser = console(reverse("admin:offload_job_changelist"))
    browser.set_window_size(1280, 900)
    assert overflow(browser) == {"page": 0, "table": 0}
    for column in ("status_display", "error_display", "created_display", "finished_display"):
        assert visible_in_viewport(browser, f"#result_list th.column-{column}"), column
    screenshot(browser, "job-list-1280")
    browser.set_window_size(800, 900)
    screenshot(browser, "job-list-800")
    browser.set_window_size(800, 900)
    assert overflow(browser) == {"page": 0, "table": 0}
    for column in ("status_display", "progress_display", "error_display"):
        assert visible_in_viewport(browser, f"#result_list th.column-{column}"), column


def test_the_job_page_moves_with_its_job(console, alice, staff):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 30}, user=alice)
    Job.objects.filter(pk=job.pk).update(
        traceback='Traceback (most recent call last):\n  File "offload/handlers/system.py", line 12, in sleep\n'
        "ZeroDivisionError: division by zero",
        log_tail="[h264 @ 0x55d5] non-existing PPS 0 referenced\nError while decoding stream #0:0",
    )
    browser = console(reverse("admin:offload_job_change", args=[job.pk]))
    wait_for(lambda: connected(browser), timeout=20, what="the socket to connect")
    assert text_of(browser, "h1") == f"system.sleep #{job.pk}"
    actions.cancel_job(staff, job)
    wait_for(status_is(browser, job, "cancelled"), timeout=20, what="the page to show the cancel")
    assert text_of(browser, f'.offload-field[data-job="{job.pk}"][data-field="finished_at"]').endswith(" UTC")
    # The page re-reads itself: Cancel gives way to Retry, and the timeline has the cancel.
    retry = reverse("admin:offload_job_retry", args=[job.pk])
    wait_for(
        lambda: browser.execute_script(f"return document.querySelector('form[action=\"{retry}\"]') !== null"),
        timeout=20,
        what="Retry to replace Cancel",
    )
    assert "cancelled" in text_of(browser, ".offload-timeline tbody")
    screenshot(browser, "job-page")


def test_the_media_pages_show_posters_and_players(console, alice, library_root):
    from offload.models import Library, MediaItem
    from tests.support.jobrunner import drain
    from tests.support.media import make_video

    make_video(library_root / "clip.mp4", seconds=4, size="640x360")
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4", title="A clip", genres=["Drama"])
    jobs.enqueue("media.probe", target=item, user=alice)
    drain()
    for kind, params in (("media.thumbnail", {}), ("media.transcode", {"profile": "h264-480p"})):
        jobs.enqueue(kind, target=item, params=params, user=alice)
    drain()
    browser = console(reverse("admin:offload_mediaitem_changelist"))
    wait_for(
        lambda: browser.execute_script("return document.querySelector('img.offload-poster-thumb').naturalWidth") > 0,
        timeout=20,
        what="the poster thumbnail to load",
    )
    screenshot(browser, "media-list")
    browser = console(reverse("admin:offload_mediaitem_change", args=[item.pk]))
    assert browser.execute_script("return document.querySelectorAll('.offload-player video').length") == 1
    assert browser.execute_script("return document.querySelectorAll('.offload-tag').length") == 1
    screenshot(browser, "media-page")
