"""The admin: actions go through the domain functions and say what they queued."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from offload import jobs
from offload.models import Job, JobStatus, Library, MediaItem
from tests.support.jobrunner import drain
from tests.support.media import make_video


@pytest.fixture
def library(alice, library_root):
    make_video(library_root / "lib" / "clip.mp4")
    return Library.objects.create(name="Lib", path=str(library_root / "lib"), owner=alice)


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def link(job) -> str:
    return f'<a href="/admin/offload/job/{job.pk}/change/">#{job.pk}</a>'


def queued_message(response, text: str, jobs: list) -> bool:
    """Whether a message says text and links each job."""
    return any(m.startswith(text) and all(link(j) in m for j in jobs) for m in messages_of(response))


def test_scan_now_action_queues_a_scan_per_library(admin_client, library, staff):
    url = reverse("admin:offload_library_changelist")
    response = admin_client.post(url, {"action": "scan", "_selected_action": [library.pk]}, follow=True)
    job = Job.objects.get(kind="library.scan")
    assert f"1 job queued. Job: {link(job)}." in messages_of(response)
    assert job.target == {"type": "library", "id": library.pk}
    assert job.requested_by == staff
    again = admin_client.post(url, {"action": "scan", "_selected_action": [library.pk]}, follow=True)
    assert f"0 jobs queued. 1 already active. Job: {link(job)}." in messages_of(again)


def test_thumbnail_action_queues_one_job_per_item(admin_client, library):
    items = [MediaItem.objects.create(library=library, relative_path=f"{n}.mp4") for n in ("a", "b")]
    url = reverse("admin:offload_mediaitem_changelist")
    response = admin_client.post(url, {"action": "thumbnail", "_selected_action": [i.pk for i in items]}, follow=True)
    assert queued_message(response, "2 jobs queued. Jobs: ", Job.objects.filter(kind="media.thumbnail"))
    assert sorted(Job.objects.filter(kind="media.thumbnail").values_list("target_id", flat=True)) == sorted(
        i.pk for i in items
    )


def test_probe_action_and_the_items_jobs_on_its_page(admin_client, library):
    drain()
    items = [MediaItem.objects.create(library=library, relative_path=f"{n}.mp4") for n in ("a", "b")]
    url = reverse("admin:offload_mediaitem_changelist")
    response = admin_client.post(url, {"action": "probe", "_selected_action": [i.pk for i in items]}, follow=True)
    assert queued_message(response, "2 jobs queued. Jobs: ", Job.objects.filter(kind="media.probe"))
    page = admin_client.get(reverse("admin:offload_mediaitem_change", args=[items[0].pk]))
    assert page.status_code == 200
    assert b"media.probe" in page.content
    # The markup live.js keeps current from the websocket, and the script itself.
    job = Job.objects.get(kind="media.probe", target_id=items[0].pk)
    html = page.content.decode()
    assert f'<progress class="offload-progress" data-job="{job.pk}"' in html
    assert f'class="offload-status offload-status-queued" data-job="{job.pk}"' in html
    assert "offload/live.js" in html


def test_job_retry_and_cancel_actions(admin_client, alice):
    failed, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    jobs.cancel(failed, alice)
    queued, _ = jobs.enqueue("system.sleep", params={"seconds": 2}, user=alice)
    url = reverse("admin:offload_job_changelist")
    selected = {"action": "retry_jobs", "_selected_action": [failed.pk, queued.pk]}
    # First a confirmation page with the count and the jobs by name; nothing changed yet.
    asked = admin_client.post(url, selected)
    assert asked.status_code == 200
    assert b"Retry 2 jobs?" in asked.content
    assert f"system.sleep #{failed.pk}".encode() in asked.content
    assert Job.objects.get(pk=failed.pk).status == JobStatus.CANCELLED
    response = admin_client.post(url, {**selected, "post": "yes"}, follow=True)
    texts = messages_of(response)
    assert f"1 job queued again: {link(failed)}." in texts
    assert any("only failed or cancelled jobs can be retried" in t for t in texts)
    asked = admin_client.post(url, {"action": "cancel_jobs", "_selected_action": [queued.pk]})
    assert b"Cancel 1 job?" in asked.content
    assert Job.objects.get(pk=queued.pk).status == JobStatus.QUEUED
    confirmed = {"action": "cancel_jobs", "_selected_action": [queued.pk], "post": "yes"}
    response = admin_client.post(url, confirmed, follow=True)
    assert f"1 job cancelled: {link(queued)}." in messages_of(response)
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED


def test_admin_pages_render_with_filters_and_readable_errors(admin_client, library, alice):
    job, _ = jobs.enqueue("library.scan", target=library, user=alice)
    drain()
    broken = MediaItem.objects.create(library=library, relative_path="missing.mp4")
    probe, _ = jobs.enqueue("media.probe", target=broken, user=alice)
    drain()
    changelist = admin_client.get(reverse("admin:offload_job_changelist") + "?status__exact=failed")
    assert changelist.status_code == 200
    assert f"/admin/offload/job/{probe.pk}/change/".encode() in changelist.content
    assert f"/admin/offload/job/{job.pk}/change/".encode() not in changelist.content
    detail = admin_client.get(reverse("admin:offload_job_change", args=[probe.pk]))
    assert b"The file missing.mp4 no longer exists." in detail.content
    scan_detail = admin_client.get(reverse("admin:offload_job_change", args=[job.pk]))
    # The result is read, not dumped: one line per field.
    assert b"<dt>created</dt><dd>1</dd>" in scan_detail.content
    for name in ("library", "mediaitem", "jobevent"):
        assert admin_client.get(reverse(f"admin:offload_{name}_changelist")).status_code == 200
    filtered = admin_client.get(
        reverse("admin:offload_mediaitem_changelist")
        + f"?library__id__exact={library.pk}&kind__exact=movie&status__exact=ready"
    )
    assert filtered.status_code == 200
    search = admin_client.get(reverse("admin:offload_job_changelist") + "?q=library.scan")
    assert search.status_code == 200


def test_an_edit_in_the_admin_locks_the_field(admin_client, library):
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4")
    url = reverse("admin:offload_mediaitem_change", args=[item.pk])
    form = {
        "kind": "movie",
        "title": "Typed by hand",
        "original_title": "",
        "year": "",
        "overview": "",
        "genres": "[]",
        "people": "[]",
        "tags": "[]",
        "series_title": "",
        "season": "",
        "episode": "",
        "locked_fields": "[]",
        # The admin form posts the initial value of fields with a callable default, as a browser does.
        "initial-genres": "[]",
        "initial-people": "[]",
        "initial-tags": "[]",
        "initial-locked_fields": "[]",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content[:2000]
    item.refresh_from_db()
    assert item.title == "Typed by hand"
    assert item.locked_fields == ["title"]


def test_a_library_outside_the_roots_is_refused_in_the_admin(admin_client, library_root):
    response = admin_client.post(reverse("admin:offload_library_add"), {"name": "Evil", "path": "/etc"})
    assert response.status_code == 200
    assert b"must be inside the library roots" in response.content
    assert not Library.objects.filter(name="Evil").exists()


def test_transcode_action_asks_for_the_profile_then_queues(admin_client, library):
    items = [MediaItem.objects.create(library=library, relative_path=f"{n}.mp4") for n in ("a", "b", "c")]
    url = reverse("admin:offload_mediaitem_changelist")
    selected = [i.pk for i in items]
    page = admin_client.post(url, {"action": "transcode", "_selected_action": selected})
    assert page.status_code == 200
    assert b"This will queue <strong>3 transcode jobs</strong>" in page.content
    assert b"hls-720p" in page.content
    assert not Job.objects.exists()
    done = admin_client.post(
        url,
        {"action": "transcode", "_selected_action": selected, "profile": "h264-480p", "confirm": "yes"},
        follow=True,
    )
    assert queued_message(done, "3 jobs queued. Jobs: ", Job.objects.filter(kind="media.transcode"))
    assert Job.objects.filter(kind="media.transcode", params={"profile": "h264-480p"}).count() == 3


def test_the_item_page_shows_renditions_and_the_poster(admin_client, library, alice):
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4", duration=1.0)
    jobs.enqueue("media.transcode", target=item, params={"profile": "h264-480p"}, user=alice)
    jobs.enqueue("media.thumbnail", target=item, user=alice)
    drain()
    page = admin_client.get(reverse("admin:offload_mediaitem_change", args=[item.pk]))
    assert b"h264-480p" in page.content
    assert f"/media/renditions/{item.pk}/h264-480p.mp4".encode() in page.content
    assert f"/media/thumbnails/{item.pk}/poster.jpg".encode() in page.content


def test_a_failed_transcode_shows_its_reason_on_the_job_page(admin_client, library, alice, library_root):
    (library_root / "lib" / "fake.mp4").write_bytes(b"\x00" * 1000)
    item = MediaItem.objects.create(library=library, relative_path="fake.mp4")
    job, _ = jobs.enqueue("media.transcode", target=item, params={"profile": "h264-480p"}, user=alice)
    drain()
    page = admin_client.get(reverse("admin:offload_job_change", args=[job.pk]))
    assert b"The source is not readable media" in page.content
