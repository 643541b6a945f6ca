"""The console's numbers agree and read as a person reads them: human durations, one definition
of a run's time, a tooltip with each dashboard number's definition, a forecast from run times."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from offload import jobs
from offload.admin import media as media_admin
from offload.jobs import rollups
from offload.jobs.forecast import drain_seconds, queue_rows
from offload.models import Job, JobAttempt, JobStatus, Library, MediaItem, QueueSample, Rendition
from tests.support.jobrows import make_job

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/operations/dashboard/"


def field_of(html: str, name: str) -> str:
    """The text of one read-only field on an admin page, tags stripped."""
    found = re.search(rf'field-{name}">.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert found, name
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_the_dashboard_says_a_short_wait_in_seconds_not_zero_minutes(admin_client):
    now = timezone.now()
    make_job(status=JobStatus.QUEUED, queued_at=now - timedelta(seconds=15))
    make_job("media.transcode", JobStatus.RUNNING, started_at=now - timedelta(seconds=95), heartbeat_at=now)
    page = admin_client.get(DASHBOARD).content.decode()
    waiting = re.search(r"waiting for ([^\n<]+)", page).group(1).strip()
    assert re.fullmatch(r"1[5-9] s", waiting), waiting
    # Django's timesince writes "0\xa0minutes"; none is left on the page.
    assert not re.search(r"\b0\s+minutes", page) and "\xa0minute" not in page
    assert re.search(r"<td>1 min 3[5-9] s</td>", page)


def test_the_job_pages_ran_is_its_last_attempts_took(admin_client, alice):
    # An attempt deferred after 1.7 s, then cancelled while it waited: the attempt ran 1.7 s,
    # not the 4.8 s from its start to the cancel.
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    claimed = jobs.claim(job.pk)
    jobs.defer(claimed, "the scanner is busy", delay=30)
    jobs.cancel(Job.objects.get(pk=job.pk), alice)
    start = timezone.now() - timedelta(seconds=10)
    JobAttempt.objects.filter(job=job).update(started_at=start, finished_at=start + timedelta(seconds=1.7))
    Job.objects.filter(pk=job.pk).update(started_at=start, finished_at=start + timedelta(seconds=4.8))
    html = admin_client.get(reverse("admin:offload_job_change", args=[job.pk])).content.decode()
    took = re.search(r'<table class="offload-attempts">.*?<tbody><tr>(.*?)</tr>', html, re.S).group(1)
    assert "<td>1.7 s</td>" in took
    assert field_of(html, "run_display") == "1.7 s"
    listing = admin_client.get(reverse("admin:offload_job_changelist")).content.decode()
    run_cell = re.search(rf'data-job="{job.pk}" data-field="run"[^>]*>([^<]*)<', listing).group(1)
    assert run_cell == "1.7 s"


def test_a_job_that_ran_to_its_finish_ran_as_long_as_its_attempt_took(admin_client, alice):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    jobs.succeed(jobs.claim(job.pk), {})
    start = timezone.now() - timedelta(seconds=10)
    JobAttempt.objects.filter(job=job).update(started_at=start, finished_at=start + timedelta(seconds=4.8))
    Job.objects.filter(pk=job.pk).update(started_at=start, finished_at=start + timedelta(seconds=4.8))
    html = admin_client.get(reverse("admin:offload_job_change", args=[job.pk])).content.decode()
    assert field_of(html, "run_display") == "4.8 s"


def test_each_dashboard_number_says_its_definition_and_window(admin_client):
    make_job(status=JobStatus.FAILED, error="boom")
    page = admin_client.get(DASHBOARD).content.decode()
    failures = re.search(r'<div class="module" id="ops-failures">\s*<h2 title="([^"]+)"', page)
    assert failures and "the Failures page" in failures.group(1) and "any age" in failures.group(1)
    rate = re.search(r'<th title="([^"]+)">Failure rate, last hour</th>', page)
    assert rate and "finish" in rate.group(1) and "last 60 minutes" in rate.group(1)
    assert re.search(r'<h2 title="[^"]*last 24 hours[^"]*">Jobs by kind', page)
    assert re.search(r'<th class="ops-count" title="[^"]+">Finished, 15 min</th>', page)


def test_the_dashboards_failed_jobs_agree_with_the_failures_page_and_the_job_list(admin_client):
    old = timezone.now() - timedelta(days=3)
    make_job(status=JobStatus.FAILED, error="boom", finished_at=old)
    make_job(status=JobStatus.FAILED, error="boom")
    # Failed once, then retried and succeeded: no longer a failed job anywhere.
    make_job(status=JobStatus.SUCCEEDED)
    page = admin_client.get(DASHBOARD).content.decode()
    dashboard = int(re.search(r"Failures: (\d+) failed job", page).group(1))
    failures_page = admin_client.get("/admin/operations/failures/").content.decode()
    listed = admin_client.get(reverse("admin:offload_job_changelist") + "?status__exact=failed")
    assert dashboard == 2
    assert re.search(r"\b2 failed jobs?\b", failures_page)
    assert listed.context["cl"].result_count == 2
    # The dashboard's count links the same list.
    assert "?status__exact=failed" in page


def test_the_drain_forecast_uses_run_times_when_few_jobs_finished_lately(alice):
    now = timezone.now()
    make_job(started_at=now - timedelta(minutes=3, seconds=5), finished_at=now - timedelta(minutes=3))
    for n in range(3):
        jobs.enqueue("system.noop", params={"n": n}, user=alice)
    row = next(r for r in queue_rows() if r["kind"] == "system.noop")
    assert row["finished_last_15m"] == 1
    # Three 5 s jobs, one at a time: about 15 s, not 3 × 900 s.
    assert row["drain_seconds"] == 15.0


def test_drain_seconds_from_run_times_honour_the_cap():
    assert drain_seconds(queued=4, running=0, finished=1, paused=False, run_seconds=5.0) == 20.0
    assert drain_seconds(queued=4, running=0, finished=1, paused=False, run_seconds=5.0, concurrency=2) == 10.0
    assert drain_seconds(queued=4, running=2, finished=0, paused=False, run_seconds=5.0) == 15.0
    # Many finishes lately: the rate holds, as before.
    assert drain_seconds(queued=5, running=1, finished=60, paused=False, run_seconds=5.0) == 90.0
    assert drain_seconds(queued=5, running=1, finished=0, paused=True, run_seconds=5.0) is None


def test_the_dashboard_says_the_forecast_in_human_units(admin_client, alice):
    now = timezone.now()
    make_job(started_at=now - timedelta(minutes=4, seconds=10), finished_at=now - timedelta(minutes=3))
    for n in range(3):
        jobs.enqueue("system.noop", params={"n": n}, user=alice)
    page = admin_client.get(DASHBOARD).content.decode()
    assert "about 3 min 30 s" in page


def test_an_hls_rendition_shows_its_real_bitrate_never_zero(alice, library_root):
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    # ffprobe reads a playlist's own few hundred bytes: 300 b/s.
    hls = Rendition(item=item, profile="hls", path="x/index.m3u8", size=2_500_000, duration=10.0, bitrate=300)
    assert "2 Mb/s" in media_admin.player(hls)
    assert "0 kb/s" not in media_admin.player(hls)
    unknown = Rendition(item=item, profile="hls", path="x/index.m3u8", size=0, duration=None, bitrate=300)
    assert "kb/s" not in media_admin.player(unknown)


def test_last_enriched_reads_like_every_other_time(admin_client, alice, library_root):
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4", enriched_at=timezone.now())
    html = admin_client.get(reverse("admin:offload_mediaitem_change", args=[item.pk])).content.decode()
    enriched = re.search(r"Last enriched: (.*?)</p>", html).group(1)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>$", enriched), enriched


def test_every_row_of_the_dashboards_panels_says_what_it_counts(admin_client):
    make_job(status=JobStatus.QUEUED)
    page = admin_client.get(DASHBOARD).content.decode()
    for panel in ("ops-queue", "ops-redis", "ops-search"):
        html = re.search(rf'<div class="module" id="{panel}">(.*?)</div>', page, re.S).group(1)
        headed = re.findall(r"<tr><th( title=\"[^\"]+\")?>", html)
        assert headed and all(headed), panel


POINT = r"(\d\d:\d\d)(?:–\d\d:\d\d)? UTC: (?:at most )?(\d+) (\S+) queued"


def depth_charts(page: str) -> list[dict]:
    """The queue-depth charts as drawn: each point's tooltip per (minute, kind), each kind's colour and count now."""
    module = re.search(r'<div class="module" id="ops-queue-depth">(.*?)\n</div>', page, re.S).group(1)
    found = []
    for box in module.split('<div class="ops-chart-box">')[1:]:
        points, colours = {}, {}
        for colour, title in re.findall(r'<circle [^>]*fill="(#\w+)"><title>([^<]+)</title>', box):
            # "12:07 UTC: 9 media.transcode queued", or for 15 minutes "12:00–12:15 UTC: at most 9 …".
            at, n, kind = re.fullmatch(POINT, title).groups()
            points[(at, kind)] = int(n)
            colours.setdefault(kind, set()).add(colour)
        legend = re.findall(r'<span style="background: (#\w+)"></span>(\S+) \((\d+) now\)', box)
        found.append({"points": points, "colours": colours, "legend": {k: (c, int(n)) for c, k, n in legend}})
    return found


def test_the_two_queue_depth_charts_agree_at_every_moment_and_with_the_count_now(admin_client):
    this_minute = timezone.now().replace(second=0, microsecond=0)
    # A quarter-hour wholly inside the last hour: 2 transcodes queued each minute of it, 9 at
    # its seventh minute (between two quarter-hours), and probes queued only at that minute.
    quarter = this_minute.replace(minute=this_minute.minute - this_minute.minute % 15) - timedelta(minutes=15)
    for minute in range(15):
        at = quarter + timedelta(minutes=minute)
        QueueSample.objects.create(at=at, kind="media.transcode", queued=9 if minute == 7 else 2)
        QueueSample.objects.create(at=at, kind="media.probe", queued=4 if minute == 7 else 0)
    for _ in range(3):
        make_job("media.transcode", JobStatus.QUEUED)
    page = admin_client.get(DASHBOARD).content.decode()
    hour, day = depth_charts(page)
    assert set(hour["legend"]) == set(day["legend"]) == {"media.transcode", "media.probe"}
    minutes = {(quarter + timedelta(minutes=m)).strftime("%H:%M") for m in range(15)}
    for kind in hour["legend"]:
        # One colour per kind, whichever chart an operator reads.
        assert hour["legend"][kind][0] == day["legend"][kind][0] == hour["colours"][kind].pop()
        # The day chart's point for the quarter is the hour chart's highest in it.
        highest = max(n for (at, k), n in hour["points"].items() if k == kind and at in minutes)
        assert day["points"].get((f"{quarter:%H:%M}", kind)) == highest
    assert day["points"].get((f"{quarter:%H:%M}", "media.transcode")) == 9
    # Both end with the count now: the Jobs by kind table's queued and the drain forecast's.
    assert hour["legend"]["media.transcode"][1] == day["legend"]["media.transcode"][1] == 3
    assert hour["legend"]["media.probe"][1] == day["legend"]["media.probe"][1] == 0
    assert re.search(r'data-kind="media.transcode" data-status="queued"><a [^>]+>3</a>', page)
    assert re.search(r"media\.transcode</th><td>\w+</td>\s*<td class=\"ops-count\">3</td>", page)


def test_a_queue_that_emptied_is_sampled_as_zero_not_left_out(alice):
    job, _ = jobs.enqueue("system.noop", params={"n": 1}, user=alice)
    at = timezone.now().replace(second=0, microsecond=0)
    rollups.sample_queues(at - timedelta(minutes=1))
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, finished_at=timezone.now())
    rollups.sample_queues(at)
    noop = dict(QueueSample.objects.filter(kind="system.noop").values_list("at", "queued"))
    assert noop == {at - timedelta(minutes=1): 1, at: 0}
    # Every registered kind has its row, so a missing row means a minute not sampled.
    assert QueueSample.objects.filter(at=at, kind="media.transcode", queued=0).exists()
    # The same minute sampled again keeps the later count.
    jobs.enqueue("system.noop", params={"n": 2}, user=alice)
    rollups.sample_queues(at)
    assert QueueSample.objects.get(at=at, kind="system.noop").queued == 1


def test_each_kind_row_of_the_dashboards_tables_says_what_it_counts(admin_client):
    now = timezone.now()
    make_job("media.probe", JobStatus.QUEUED)
    make_job("media.probe", started_at=now - timedelta(seconds=30), finished_at=now - timedelta(seconds=10))
    page = admin_client.get(DASHBOARD).content.decode()
    for table in ("ops-drain", "ops-latency", "ops-jobs"):
        html = re.search(rf'<div class="module" id="{table}">(.*?)</table>', page, re.S).group(1)
        heads = re.findall(r"<tr><th( title=\"[^\"]*media\.probe[^\"]+\")?>(?:<a [^>]+>)?media\.probe", html)
        assert heads and all(heads), table
    assert re.search(r'<tfoot><tr><th title="[^"]+">All kinds</th>', page)
