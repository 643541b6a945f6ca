"""The live admin: pages that work as static pages, and that move by themselves in a browser."""

from pathlib import Path

import pytest
from django.urls import reverse

from offload import jobs
from offload.lib.redis_state import key, state_redis
from offload.models import Job, Library, MediaItem
from tests.support.browser import screenshot
from tests.support.cluster import media_lane, wait_for
from tests.support.media import make_video

ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test" / "artifacts"


def test_the_admin_index_shows_recent_activity(admin_client, alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    page = admin_client.get(reverse("admin:index"))
    assert b"Recent activity" in page.content
    assert f"system.noop #{job.pk}</a> queued".encode() in page.content
    assert b"offload/live.js" in page.content


def test_the_job_list_is_a_complete_static_page(admin_client, alice):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    page = admin_client.get(reverse("admin:offload_job_changelist"))
    html = page.content.decode()
    assert f'<span class="offload-status offload-status-queued" data-job="{job.pk}">queued</span>' in html
    assert f'data-job="{job.pk}" max="100" value="0"' in html
    assert "offload/live.js" in html


def test_bob_sees_no_activity_of_alices_in_the_index(client, bob, alice):
    bob.is_staff = True
    bob.save()
    client.force_login(bob)
    jobs.enqueue("system.sleep", params={"seconds": 2}, user=alice)
    # Staff see everyone's activity; the panel is the staff stream.
    assert b"system.sleep" in client.get(reverse("admin:index")).content


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,900",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


@pytest.mark.slow
def test_the_job_list_moves_without_a_reload(asgi_server, qcluster, browser, staff, alice, library_root):
    from selenium.webdriver.common.by import By

    make_video(library_root / "clip.mp4", seconds=30, size="640x360")
    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4", duration=30.0)
    job, _ = jobs.enqueue("media.transcode", target=item, params={"profile": "h264-720p"}, user=alice)

    server = asgi_server()
    browser.get(f"{server.url}/admin/login/?next=/admin/offload/job/")
    browser.find_element(By.NAME, "username").send_keys("staff")
    browser.find_element(By.NAME, "password").send_keys("staff-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    status = browser.find_element(By.CSS_SELECTOR, f'.offload-status[data-job="{job.pk}"]')
    bar = browser.find_element(By.CSS_SELECTOR, f'progress.offload-progress[data-job="{job.pk}"]')
    assert status.text == "queued"
    browser.execute_script("window.offloadNotReloaded = true;")
    wait_for(lambda: state_redis().zcard(key("ws", "user", staff.pk)), timeout=10, what="the page's socket to connect")

    qcluster(**media_lane())
    seen: list[float] = []

    def moved_to_succeeded():
        seen.append(float(bar.get_attribute("value")))
        return status.text == "succeeded"

    wait_for(moved_to_succeeded, timeout=120, what="the status to turn succeeded in the page")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "admin-live-jobs.png"))
    assert browser.execute_script("return window.offloadNotReloaded === true;")
    assert any(0 < value < 100 for value in seen), seen
    assert seen == sorted(seen)
    assert float(bar.get_attribute("value")) == 100
    assert Job.objects.get(pk=job.pk).status == "succeeded"


@pytest.mark.slow
def test_the_queues_page_shows_a_pause_made_elsewhere_without_a_reload(asgi_server, browser, staff, staff_api):
    from selenium.webdriver.common.by import By

    server = asgi_server()
    browser.get(f"{server.url}/admin/login/?next=/admin/operations/queues/")
    browser.find_element(By.NAME, "username").send_keys("staff")
    browser.find_element(By.NAME, "password").send_keys("staff-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    state = browser.find_element(By.CSS_SELECTOR, 'tr[data-kind="media.transcode"] [data-field="state"]')
    cap = browser.find_element(By.CSS_SELECTOR, 'tr[data-kind="media.transcode"] [data-field="cap"]')
    assert (state.text, cap.text) == ("running", "none")
    browser.execute_script("window.offloadNotReloaded = true;")
    # Another operator, through the API.
    assert staff_api.post("/api/v1/queues/media.transcode/pause/").status_code == 200
    assert staff_api.patch("/api/v1/queues/media.transcode/", {"concurrency": 1}, format="json").status_code == 200
    wait_for(lambda: (state.text, cap.text) == ("paused", "1"), timeout=30, what="the row to show the pause")
    toggle = browser.find_element(By.CSS_SELECTOR, 'tr[data-kind="media.transcode"] button[name="change"]')
    assert toggle.text == "Resume"
    assert browser.execute_script("return window.offloadNotReloaded === true;")
    screenshot(browser, "queues")
