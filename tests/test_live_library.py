"""A library's page follows its scans in a real browser: when a scan finishes, its Took and Result,
the item count and "Last scanned" change without a reload."""

import pytest
from django.urls import reverse

from offload import actions
from offload.models import Library
from tests.support.browser import chromium, log_in, screenshot
from tests.support.cluster import wait_for
from tests.support.jobrunner import drain
from tests.support.media import make_video

pytestmark = pytest.mark.slow


def field_text(browser, field: str) -> str:
    return browser.execute_script(
        "var el = document.querySelector('.form-row.field-' + arguments[0] + ' .readonly');"
        " return el ? el.textContent.trim() : null;",
        field,
    )


def test_a_finished_scan_updates_the_library_page_without_a_reload(asgi_server, staff, alice, library_root):
    for name in ("a.mp4", "b.mp4"):
        make_video(library_root / "films" / name)
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    server = asgi_server()
    browser = chromium()
    try:
        log_in(browser, server.url, "staff", "staff-password")
        browser.get(server.url + reverse("admin:offload_library_change", args=[library.pk]))
        wait_for(
            lambda: (
                browser.execute_script("return document.documentElement.getAttribute('data-offload-connected')") == "1"
            ),
            timeout=20,
            what="the socket to connect",
        )
        browser.execute_script("window.offloadNotReloaded = true;")
        assert field_text(browser, "items_link") == "0 items"
        assert field_text(browser, "last_scanned_at") == "—"

        job, _ = actions.request_job(staff, "library.scan", library, {})
        wait_for(lambda: f"#{job.pk}" in (field_text(browser, "scan_history") or ""), timeout=20, what="the scan row")
        drain()
        wait_for(lambda: field_text(browser, "items_link") == "2 items", timeout=20, what="the item count")
        assert field_text(browser, "last_scanned_at").endswith(" UTC")
        row = browser.execute_script(
            "return Array.prototype.map.call(document.querySelectorAll('.field-scan_history tbody tr:first-child td'),"
            " function (td) { return td.textContent.trim(); });"
        )
        assert row[0] == f"#{job.pk}" and row[1] == "succeeded"
        assert row[3] != "—" and row[3].endswith(("ms", "s"))
        assert row[4].startswith("2 ")
        assert browser.execute_script("return window.offloadNotReloaded === true")
        screenshot(browser, "library-page-1280")
        browser.set_window_size(800, 900)
        screenshot(browser, "library-page-800")
    finally:
        browser.quit()
