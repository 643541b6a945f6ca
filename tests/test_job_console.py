"""The job pages an operator trusts at 3 a.m.: targets by name, search by title, every attempt,
a heartbeat age and "worker lost", a timeline that folds progress, and what will still run."""

import os
import re
import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from offload import jobs
from offload.jobs import control, kinds, reaper
from offload.models import Job, JobEvent, JobStatus, Library, MediaItem
from tests.support import kinds_for_tests
from tests.support.jobrunner import drain

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/offload/job/"


def page_of(client, job) -> str:
    response = client.get(reverse("admin:offload_job_change", args=[job.pk]))
    assert response.status_code == 200
    return response.content.decode()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def films(alice, library_root):
    return Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)


@pytest.fixture
def feature(films):
    return MediaItem.objects.create(library=films, relative_path="2024/long.feature.mkv", title="Long Feature")


@pytest.fixture
def untitled(films):
    return MediaItem.objects.create(library=films, relative_path="shorts/clip-05.mp4")


def test_the_job_list_names_targets_by_title_or_file_name_and_library(admin_client, alice, feature, untitled):
    jobs.enqueue("media.probe", target=feature, user=alice)
    jobs.enqueue("media.probe", target=untitled, user=alice)
    listing = text_of(admin_client.get(LIST).content.decode())
    assert "Long Feature in Films" in listing
    assert "clip-05.mp4 in Films" in listing
    assert f"media {feature.pk}" not in listing


def test_the_job_list_reads_target_names_with_its_rows(admin_client, alice, films):
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(LIST).status_code == 200
        return len(queries)

    item = MediaItem.objects.create(library=films, relative_path="a.mp4", title="A")
    jobs.enqueue("media.probe", target=item, user=alice)
    few = queries_for_list()
    for n in range(5):
        more = MediaItem.objects.create(library=films, relative_path=f"b{n}.mp4", title=f"B{n}")
        jobs.enqueue("media.probe", target=more, user=alice)
    assert queries_for_list() == few


def test_searching_the_job_list_finds_jobs_by_target_title_kind_and_target_id(admin_client, alice, feature, untitled):
    on_feature, _ = jobs.enqueue("media.probe", target=feature, user=alice)
    on_clip, _ = jobs.enqueue("media.probe", target=untitled, user=alice)

    def found(term: str) -> set[int]:
        html = admin_client.get(LIST, {"q": term}).content.decode()
        return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)}

    assert found("Long Feature") == {on_feature.pk}
    assert found("clip-05") == {on_clip.pk}
    assert found(f"media {untitled.pk}") == {on_clip.pk}
    assert found("media.probe") == {on_feature.pk, on_clip.pk}
    assert found(str(on_clip.pk)) == {on_clip.pk}


def test_the_job_page_and_confirmation_name_the_target(admin_client, alice, feature):
    job, _ = jobs.enqueue("media.probe", target=feature, user=alice)
    assert "Long Feature" in text_of(page_of(admin_client, job))
    confirm = admin_client.get(reverse("admin:offload_job_cancel", args=[job.pk])).content.decode()
    assert "Long Feature in Films" in text_of(confirm)


def test_the_job_page_lists_every_attempt_with_its_worker_and_outcome(admin_client, alice):
    with kinds_for_tests.registered(kinds.JobKind("test.broken", kinds_for_tests.run_broken, internal=True)):
        job, _ = jobs.enqueue("test.broken", user=alice)
        drain()
        jobs.retry(job, alice)
        drain()
    page = text_of(page_of(admin_client, job))
    worker = f"{socket.gethostname()}/{os.getpid()}"
    assert page.count(worker) == 2
    assert page.count("The input is unusable: nothing to do.") >= 2
    # The budget starts again after a retry; the runs before it are still counted.
    assert "1 of at most 3 since the last retry; 2 in all" in page


def test_a_lost_attempt_shows_in_the_timeline_and_the_attempts(admin_client, alice, settings):
    job, _ = jobs.enqueue("system.noop", user=alice)
    claimed, _ = control.pick_up(job.pk)
    jobs.heartbeat(claimed, progress=25.0)
    stale = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    reaper.requeue_lost_jobs()
    page = text_of(page_of(admin_client, job))
    worker = f"{socket.gethostname()}/{os.getpid()}"
    assert f"Attempt 1 lost on {worker} (its worker stopped beating), re-queued." in page
    assert " lost " in page


def test_a_running_job_shows_its_heartbeat_age_and_worker_lost_once_beats_are_missed(admin_client, alice, settings):
    settings.OFFLOAD_JOB_STALE_SECONDS = 20
    job, _ = jobs.enqueue("system.noop", user=alice)
    control.pick_up(job.pk)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=4))
    page = page_of(admin_client, job)
    assert re.search(r"heartbeat \d+(\.\d)? s ago", page)
    assert '<span class="offload-lost" hidden>worker lost</span>' in page
    # Three beats (5 s each) missed: lost, until another worker takes it over at 20 s.
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=16))
    for html in (page_of(admin_client, job), admin_client.get(LIST).content.decode()):
        assert '<span class="offload-lost">worker lost</span>' in html


def test_a_failed_job_says_its_next_stages_will_not_run(admin_client, alice, feature):
    job, _ = jobs.enqueue("media.probe", target=feature, user=alice, then=["media.enrich", "media.thumbnail"])
    assert "media.enrich, media.thumbnail, once it succeeds" in text_of(page_of(admin_client, job))
    claimed = jobs.claim(job.pk)
    jobs.fail(claimed, "The source is not readable media.")
    page = text_of(page_of(admin_client, job))
    assert "nothing: it failed, so media.enrich, media.thumbnail will not be queued" in page


def test_the_timeline_folds_a_run_of_progress_into_one_row(admin_client, alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    claimed, _ = control.pick_up(job.pk)
    for percent in range(5, 100, 5):
        jobs.heartbeat(claimed, progress=float(percent))
    jobs.succeed(claimed, {"ok": True})
    assert JobEvent.objects.filter(job=job, event="progress").count() == 19
    page = text_of(page_of(admin_client, job))
    assert "progress ×19" in page
    assert "5 % → 95 %" in page
    assert page.count("progress ×") == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_a_lost_attempt_a_redelivered_task_took_over_has_its_timeline_row(admin_client, alice, settings):
    job, _ = jobs.enqueue("system.noop", user=alice)
    control.pick_up(job.pk)
    stale = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    assert control.pick_up(job.pk)[0] is not None
    page = text_of(page_of(admin_client, job))
    worker = f"{socket.gethostname()}/{os.getpid()}"
    assert f"Attempt 1 lost on {worker} (its worker stopped beating); a new delivery took it over." in page


def test_the_dashboard_starts_with_lost_workers_and_held_jobs_and_why(admin_client, alice, feature, settings):
    running, _ = jobs.enqueue("system.noop", user=alice)
    control.pick_up(running.pk)
    stale = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS)
    Job.objects.filter(pk=running.pk).update(heartbeat_at=stale)
    control.pause("media.probe")
    held, _ = jobs.enqueue("media.probe", target=feature, user=alice)
    html = admin_client.get(reverse("admin:offload_operations")).content.decode()
    attention = text_of(html.split('id="ops-attention"')[1].split('<div class="ops-grid">')[0])
    assert "1 running job whose worker is lost" in attention
    assert f"system.noop #{running.pk}" in attention
    assert "worker lost" in attention
    assert "1 queued job held back: 1 paused." in attention
    assert f"media.probe #{held.pk} : paused: an operator paused media.probe" in attention
    # It comes before the charts and tables.
    assert html.index('id="ops-attention"') < html.index('id="ops-queue"')


@pytest.mark.slow
def test_the_workers_panel_names_each_clusters_lane_and_what_each_worker_runs(qcluster, admin_client, alice):
    from offload.admin import dashboard
    from tests.support.cluster import wait_for

    cluster = qcluster(OFFLOAD_Q_WORKERS="1")
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 20}, user=alice)

    def panel_shows_the_job():
        dashboard.cache.delete(dashboard.CACHE_KEY)
        workers = admin_client.get(reverse("admin:offload_operations")).context["ops"]["workers"]
        rows = [w for c in workers["clusters"] for w in c["worker_rows"] if w["job"] is not None]
        return (workers, rows) if rows else None

    workers, rows = wait_for(panel_shows_the_job, what="the worker's current job", cluster=cluster)
    (cluster_row,) = workers["clusters"]
    assert cluster_row["lane"] in workers_lanes()
    assert cluster_row["host"] == socket.gethostname()
    assert [w["job"].pk for w in rows] == [job.pk]
    assert "heartbeat" in rows[0]["heartbeat_html"]
    # The other lanes have no cluster: they head the attention list.
    assert cluster_row["lane"] not in workers["dead_lanes"]
    assert set(workers["dead_lanes"]) == set(workers_lanes()) - {cluster_row["lane"]}
    jobs.cancel(Job.objects.get(pk=job.pk), alice)


def workers_lanes() -> list[str]:
    from django.conf import settings

    return list(settings.OFFLOAD_LANES)


def test_no_header_offers_a_view_site_link_to_a_page_that_does_not_exist(admin_client):
    for page in (reverse("admin:index"), LIST, reverse("admin:offload_operations")):
        html = admin_client.get(page).content.decode()
        assert "View site" not in html
        assert 'href="/"' not in html


def test_a_cancel_confirmation_leads_back_to_its_job_by_name(admin_client, alice):
    job, _ = jobs.enqueue("system.noop", user=alice)
    html = admin_client.get(reverse("admin:offload_job_cancel", args=[job.pk])).content.decode()
    crumbs = text_of(html.split('class="breadcrumbs"')[1].split("</div>")[0])
    assert f"system.noop #{job.pk} › Cancel system.noop #{job.pk}?" in crumbs
    assert "Back" not in crumbs


def test_a_cap_message_keeps_the_kinds_name_as_written(admin_client):
    response = admin_client.post(
        reverse("admin:offload_queues_change"),
        {"change": "cap", "kind": "media.transcode", "concurrency": "1", "confirmed": "yes"},
        follow=True,
    )
    texts = [str(m) for m in response.context["messages"]]
    assert texts == ["Capped media.transcode: at most 1 at a time."]


def test_deleting_finished_jobs_asks_first_leaves_active_ones_and_is_logged(admin_client, alice, staff):
    from django.contrib.admin.models import DELETION, LogEntry

    done, _ = jobs.enqueue("system.noop", user=alice)
    jobs.succeed(jobs.claim(done.pk), {"ok": True})
    waiting_job, _ = jobs.enqueue("system.noop", params={"n": 2}, user=alice)
    chosen = {"action": "delete_finished_jobs", "_selected_action": [done.pk, waiting_job.pk]}
    asked = admin_client.post(LIST, chosen)
    assert "Delete 1 finished job?" in asked.content.decode()
    assert Job.objects.filter(pk=done.pk).exists()
    admin_client.post(LIST, {**chosen, "post": "yes"})
    assert not Job.objects.filter(pk=done.pk).exists()
    assert Job.objects.filter(pk=waiting_job.pk).exists()
    entry = LogEntry.objects.get(action_flag=DELETION)
    assert (entry.user_id, entry.object_id, entry.change_message) == (staff.pk, str(done.pk), "Deleted.")


def test_staff_without_the_delete_permission_are_not_offered_the_delete(client, alice):
    from django.contrib.auth.models import Permission

    from tests.support.people import make_user

    clerk = make_user("clerk")
    clerk.is_staff = True
    clerk.save(update_fields=["is_staff"])
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "change_job"]))
    client.force_login(clerk)
    done, _ = jobs.enqueue("system.noop", user=alice)
    jobs.succeed(jobs.claim(done.pk), {"ok": True})
    assert "delete_finished_jobs" not in client.get(LIST).content.decode()
    client.post(LIST, {"action": "delete_finished_jobs", "_selected_action": [done.pk], "post": "yes"})
    assert Job.objects.filter(pk=done.pk).exists()


def test_retry_all_failed_asks_with_the_count_then_queues_every_failed_job(admin_client, alice):
    failed = []
    for n, reason in enumerate(["The source is not readable media.", "Unexpected error: KeyError: 'title'"]):
        job, _ = jobs.enqueue("system.noop", params={"n": n}, user=alice)
        jobs.fail(jobs.claim(job.pk), reason)
        failed.append(job)
    page = admin_client.get(reverse("admin:offload_failures")).content.decode()
    assert 'value="Retry all 2 failed…"' in page
    retry = reverse("admin:offload_failures_retry")
    asked = text_of(admin_client.post(retry, {"fingerprint": "all"}).content.decode())
    assert "Retry 2 jobs?" in asked and "Queue every failed job again, whatever its cause?" in asked
    assert all(Job.objects.get(pk=job.pk).status == JobStatus.FAILED for job in failed)
    admin_client.post(retry, {"fingerprint": "all", "post": "yes"})
    assert [Job.objects.get(pk=job.pk).status for job in failed] == [JobStatus.QUEUED, JobStatus.QUEUED]


def test_the_media_list_finds_items_by_genre(admin_client, films):
    drama = MediaItem.objects.create(library=films, relative_path="a.mkv", title="A", genres=["Drama", "Crime"])
    MediaItem.objects.create(library=films, relative_path="b.mkv", title="B", genres=["Comedy"])
    html = admin_client.get(reverse("admin:offload_mediaitem_changelist"), {"q": "Drama"}).content.decode()
    found = {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)}
    assert found == {drama.pk}
