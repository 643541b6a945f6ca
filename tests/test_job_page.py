"""A job's admin page: a read-only record with Retry and Cancel, readable params and result,
ffmpeg's last lines and a failure's traceback, every time in one format with its zone."""

from django.urls import reverse

from offload import jobs
from offload.admin import readable
from offload.jobs import JobKind
from offload.jobs.runner import bounded
from offload.models import JOB_TEXT_LIMIT, Job, JobStatus, Library, MediaItem
from tests.support import kinds_for_tests
from tests.support.jobrunner import drain
from tests.support.media import make_video


def page_of(client, job) -> str:
    response = client.get(reverse("admin:offload_job_change", args=[job.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_job_page_is_a_record_not_a_form(admin_client, alice):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    html = page_of(admin_client, job)
    assert f"<h1>system.sleep #{job.pk}</h1>" in html
    assert 'name="_save"' not in html and "<textarea" not in html
    assert "Change job" not in html
    # Queued: it can be cancelled, not retried.
    assert reverse("admin:offload_job_cancel", args=[job.pk]) in html
    assert reverse("admin:offload_job_retry", args=[job.pk]) not in html
    # One time format, with the zone.
    assert " UTC</time>" in html
    assert "a.m." not in html and "p.m." not in html and "+00:00</" not in html


def test_cancel_asks_first_and_then_cancels(admin_client, alice):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    url = reverse("admin:offload_job_cancel", args=[job.pk])
    asked = admin_client.get(url)
    assert asked.status_code == 200
    assert f"Cancel system.sleep #{job.pk}?" in asked.content.decode()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    done = admin_client.post(url, follow=True)
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert f'Job <a href="/admin/offload/job/{job.pk}/change/">#{job.pk}</a> cancelled.' in done.content.decode()


def test_a_cancelled_job_offers_retry_and_retry_queues_it(admin_client, alice, staff):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    jobs.cancel(job, staff)
    html = page_of(admin_client, job)
    retry = reverse("admin:offload_job_retry", args=[job.pk])
    assert f'action="{retry}"' in html
    assert reverse("admin:offload_job_cancel", args=[job.pk]) not in html
    admin_client.post(retry)
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_a_crash_keeps_its_traceback_with_the_job(admin_client, alice):
    with kinds_for_tests.registered(JobKind("test.crashing", kinds_for_tests.run_crashing, internal=True)):
        job, _ = jobs.enqueue("test.crashing", user=alice)
        drain()
    job.refresh_from_db()
    assert "ZeroDivisionError: division by zero" in job.traceback
    assert "run_crashing" in job.traceback
    assert "ZeroDivisionError: division by zero" in page_of(admin_client, job)


def test_stored_logs_and_tracebacks_are_bounded_and_keep_their_end():
    long = "start\n" + "x" * (3 * JOB_TEXT_LIMIT) + "\nthe reason"
    kept = bounded(long)
    assert len(kept) == JOB_TEXT_LIMIT
    assert kept.endswith("the reason") and kept.startswith("…")


def test_a_failed_transcode_keeps_ffmpegs_last_lines(admin_client, alice, library_root, monkeypatch):
    from offload.handlers import transcode

    make_video(library_root / "clip.mp4", seconds=1, size="320x240")
    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4", duration=1.0)
    real = transcode.transcode_args

    def with_a_filter_ffmpeg_lacks(*args, **kwargs):
        command = real(*args, **kwargs)
        return [*command[:-1], "-vf", "no_such_filter_here", command[-1]]

    monkeypatch.setattr(transcode, "transcode_args", with_a_filter_ffmpeg_lacks)
    job, _ = jobs.enqueue("media.transcode", target=item, params={"profile": "h264-480p"}, user=alice)
    drain()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "no_such_filter_here" in job.log_tail
    html = page_of(admin_client, job)
    assert "Last lines of ffmpeg" in html
    assert "no_such_filter_here" in html


def test_results_read_as_a_person_reads_them(settings):
    html = readable.mapping({"url": "/media/renditions/5/h264-720p.mp4", "size": 4_200_000, "duration": 125.0})
    assert '<a href="/media/renditions/5/h264-720p.mp4">' in html
    assert "4.2 MB" in html
    assert "2 min 5 s" in html


def test_a_running_transcodes_eta_is_a_time(settings):
    from datetime import UTC, datetime

    html = readable.mapping({"eta_seconds": 90}, measured_at=datetime(2026, 5, 1, 8, 55, 0, tzinfo=UTC))
    assert "<dt>ETA</dt>" in html
    assert "2026-05-01 08:56:30 UTC" in html and "in 1 min 30 s" in html


def test_an_unknown_admin_address_lists_no_url_patterns(admin_client, settings):
    settings.DEBUG = True
    response = admin_client.get("/admin/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "URLconf" not in html and "api/v1/" not in html
    assert "There is no admin page" in html


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("offload/favicon.svg")


def test_django_qs_always_empty_task_tables_are_not_listed(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Successful tasks" not in html and "Failed tasks" not in html
    # The schedules are django-q2's and real: they stay.
    assert "Scheduled tasks" in html


def test_every_admin_page_links_every_operations_page(admin_client):
    for url in (reverse("admin:index"), reverse("admin:offload_library_changelist"), reverse("admin:offload_cache")):
        html = admin_client.get(url).content.decode()
        nav = html[html.index('<nav id="offload-nav"') :]
        nav = nav[: nav.index("</nav>")]
        for page in ("offload_operations", "offload_job_changelist", "offload_failures", "offload_cache"):
            assert f'href="{reverse("admin:" + page)}"' in nav


def test_a_long_job_list_is_counted_to_a_cap_not_over_the_table(admin_client, alice, monkeypatch):
    from offload.admin.pagination import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "CAP", 3)
    for n in range(5):
        jobs.enqueue("system.sleep", params={"seconds": n}, user=alice)
    html = admin_client.get(reverse("admin:offload_job_changelist")).content.decode()
    assert "more than 3 jobs" in html
    # The kind filter lists the registered kinds, with no query over the jobs.
    assert "?kind=media.transcode" in html
