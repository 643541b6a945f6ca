"""The admin's operations dashboard, failure groups and the admin log of job actions."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from offload.admin import dashboard, failures
from offload.models import Job, JobStatus, Library, MediaItem
from tests.support.cluster import wait_for
from tests.support.jobrows import make_job
from tests.support.people import make_user

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/operations/dashboard/"
FAILURES = "/admin/operations/failures/"
RETRY_GROUP = "/admin/operations/failures/retry/"


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def a_busy_day(users) -> None:
    """Jobs of every status and several kinds, by several users, some running with progress."""
    for i, user in enumerate(users):
        make_job("media.probe", JobStatus.SUCCEEDED, requested_by=user)
        make_job("media.probe", JobStatus.FAILED, requested_by=user, error=f"ffprobe could not read item {i}")
        make_job("media.transcode", JobStatus.RUNNING, requested_by=user, progress=10.0 * i)
        make_job("library.scan", JobStatus.QUEUED, requested_by=user)
        make_job("media.thumbnail", JobStatus.CANCELLED, requested_by=user)


# --- The dashboard ------------------------------------------------------------------


def test_the_index_links_the_dashboard_and_keeps_the_recent_activity_panel(staff_client):
    page = staff_client.get("/admin/").content.decode()
    assert f'href="{DASHBOARD}"' in page
    assert f'href="{FAILURES}"' in page
    assert 'id="offload-activity-module"' in page
    assert staff_client.get("/admin/operations/")["Location"] == DASHBOARD


def test_staff_see_jobs_per_kind_and_status(staff_client, alice):
    a_busy_day([alice])
    response = staff_client.get(DASHBOARD)
    assert response.status_code == 200
    table = response.context["ops"]["jobs"]
    probe = next(row for row in table["rows"] if row["kind"] == "media.probe")
    assert dict(probe["cells"]) == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 0}
    assert dict(table["totals"]) == {"queued": 1, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 1}
    assert "?kind=media.probe&amp;status__exact=failed" in response.content.decode()


def test_the_dashboard_shows_the_oldest_queued_job_and_running_jobs_with_progress(staff_client, alice):
    now = timezone.now()
    make_job("library.scan", JobStatus.QUEUED, created_at=now - timedelta(minutes=5))
    oldest = make_job("media.probe", JobStatus.QUEUED, created_at=now - timedelta(hours=2))
    running = make_job("media.transcode", JobStatus.RUNNING, requested_by=alice, progress=42.0)
    response = staff_client.get(DASHBOARD)
    ops = response.context["ops"]
    assert ops["oldest_queued"]["pk"] == oldest.pk
    assert ops["oldest_queued"]["age"] >= 2 * 3600
    assert [job["pk"] for job in ops["running"]] == [running.pk]
    page = response.content.decode()
    # The same markup as the job list, so live.js moves the bar as progress events arrive.
    assert f'<progress class="offload-progress" data-job="{running.pk}" max="100" value="42.0">' in page
    assert f"media.probe #{oldest.pk}" in page


def test_the_oldest_queued_job_is_the_one_longest_due_not_the_one_made_first(staff_client):
    now = timezone.now()
    # Made days ago, retried by an operator a minute ago.
    make_job("media.probe", JobStatus.QUEUED, created_at=now - timedelta(days=3), queued_at=now - timedelta(minutes=1))
    waiting = make_job("library.scan", JobStatus.QUEUED, created_at=now - timedelta(minutes=20))
    # Waiting out a backoff: due in an hour.
    make_job("media.enrich", JobStatus.QUEUED, created_at=now - timedelta(hours=1), queued_at=now + timedelta(hours=1))
    oldest = staff_client.get(DASHBOARD).context["ops"]["oldest_queued"]
    assert oldest["pk"] == waiting.pk
    assert 20 * 60 <= oldest["age"] < 21 * 60


def test_throughput_counts_jobs_finished_in_the_last_hour_and_day_with_the_failure_rate(staff_client):
    now = timezone.now()
    for _ in range(3):
        make_job(status=JobStatus.SUCCEEDED, finished_at=now - timedelta(minutes=10))
    make_job(status=JobStatus.FAILED, finished_at=now - timedelta(minutes=10), error="boom")
    make_job(status=JobStatus.CANCELLED, finished_at=now - timedelta(minutes=20))
    make_job(status=JobStatus.FAILED, finished_at=now - timedelta(hours=5), error="boom")
    make_job(status=JobStatus.SUCCEEDED, finished_at=now - timedelta(days=2))
    throughput = staff_client.get(DASHBOARD).context["ops"]["throughput"]
    hour, day = throughput["hour"], throughput["day"]
    assert hour["totals"] == {"succeeded": 3, "failed": 1, "cancelled": 1}
    assert hour["failure_rate"] == 25.0
    assert day["totals"] == {"succeeded": 3, "failed": 2, "cancelled": 1}
    assert day["failure_rate"] == 40.0
    assert len(hour["bars"]) == 60 and len(day["bars"]) == 24
    # The chart's busiest minute holds the four jobs of ten minutes ago.
    assert hour["peak"] == 4
    assert sum(len(bar["segments"]) > 0 for bar in hour["bars"]) == 2


def test_the_dashboard_renders_in_the_same_few_queries_however_many_jobs_there_are(
    staff_client, alice, bob, django_assert_num_queries
):
    a_busy_day([alice])
    staff_client.get("/admin/")  # the session is cached and the content types are known
    # The user, then: the event seq the snapshot stands at, where the rollups end, the rolled-up
    # hours, the rolled-up minutes, the finishes since, active jobs per kind, queue samples,
    # oldest queued, what needs attention (running jobs whose worker is lost, the oldest queued
    # jobs and their kinds' holds), running, the drain forecast per kind and the queue controls,
    # failure groups (these rows were written without the spine, so without their group: read, one
    # update for their one group, read again; then the GROUP BY and the sample ids), media rows,
    # index writes waiting, last index build, what each worker runs (the open attempts).
    with django_assert_num_queries(24):
        assert staff_client.get(DASHBOARD).status_code == 200
    a_busy_day([alice, bob, make_user("carol"), make_user("dave")])
    dashboard.cache.delete(dashboard.CACHE_KEY)
    with django_assert_num_queries(24):
        assert staff_client.get(DASHBOARD).status_code == 200


def test_a_second_look_within_seconds_reads_the_cached_snapshot(staff_client, django_assert_num_queries):
    staff_client.get(DASHBOARD)
    make_job(status=JobStatus.FAILED, error="new")
    with django_assert_num_queries(1):  # the user only
        response = staff_client.get(DASHBOARD)
    assert dict(response.context["ops"]["jobs"]["totals"])["failed"] == 0


def test_staff_without_permission_to_view_jobs_neither_see_nor_open_the_dashboard(db):
    clerk = make_user("clerk")
    clerk.is_staff = True
    clerk.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(clerk)
    assert DASHBOARD not in client.get("/admin/").content.decode()
    assert client.get(DASHBOARD).status_code == 403
    assert client.get(FAILURES).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_dashboard_shows_redis_health(staff_client):
    redis = staff_client.get(DASHBOARD).context["ops"]["redis"]
    assert redis["ok"] is True
    assert redis["version"]


def test_the_dashboard_says_when_redis_does_not_answer(staff_client, settings):
    staff_client.get("/admin/")
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2, "IGNORE_EXCEPTIONS": True},
        }
    }
    response = staff_client.get(DASHBOARD)
    assert response.status_code == 200
    assert response.context["ops"]["redis"]["ok"] is False
    assert "Not answering" in response.content.decode()


def test_the_dashboard_compares_indexed_documents_with_database_rows(
    staff_client, typesense, settings, alice, tmp_path
):
    from search import sync
    from tests.support.search import drop_index

    settings.SEARCH_ALIAS = f"t{uuid.uuid4().hex[:12]}"
    try:
        library = Library.objects.create(name="Films", path=str(tmp_path), owner=alice)
        for name in ("a.mkv", "b.mkv", "c.mkv"):
            MediaItem.objects.create(library=library, relative_path=name)
        sync.sync_pending()
        MediaItem.objects.create(library=library, relative_path="d.mkv")  # written, not yet indexed
        search = staff_client.get(DASHBOARD).context["ops"]["search"]
        assert (search["rows"], search["documents"], search["pending"]) == (4, 3, 1)
        assert search["drift"] == 1
        assert search["unexplained_drift"] is False
    finally:
        drop_index(settings.SEARCH_ALIAS)


def test_the_dashboard_says_when_the_search_server_is_unreachable(staff_client, settings):
    settings.TYPESENSE_URL = "http://127.0.0.1:9"
    search = staff_client.get(DASHBOARD).context["ops"]["search"]
    assert search["documents"] is None
    assert search["error"].startswith("unreachable")


@pytest.mark.slow
def test_the_dashboard_shows_a_running_cluster_and_its_workers(qcluster, staff):
    cluster = qcluster(OFFLOAD_Q_WORKERS="2")
    client = Client()
    client.force_login(staff)

    def cluster_reported_its_workers():
        # The sentinel's first report can come before the pool has started (status "Starting", no workers).
        dashboard.cache.delete(dashboard.CACHE_KEY)
        clusters = client.get(DASHBOARD).context["ops"]["workers"]["clusters"]
        return clusters if clusters and clusters[0]["workers"] else None

    clusters = wait_for(cluster_reported_its_workers, what="the cluster's stat with its workers", cluster=cluster)
    assert len(clusters) == 1
    assert clusters[0]["workers"] == 2
    assert clusters[0]["pid"] == cluster.proc.pid


def test_with_no_cluster_the_dashboard_says_no_worker_runs(staff_client):
    response = staff_client.get(DASHBOARD)
    assert response.context["ops"]["workers"]["clusters"] == []
    assert "No cluster is reporting" in response.content.decode()


# --- Failure groups ----------------------------------------------------------------


def test_a_failure_reason_is_classified_with_ids_numbers_paths_and_quotes_blanked():
    assert failures.classify("Unexpected error: KeyError: 'title' (after 3 attempts)") == ("KeyError", "'…'")
    assert failures.classify("ffprobe could not read /srv/media/films/a b.mkv: Invalid data found (item 12)") == (
        "JobFailed",
        "ffprobe could not read <path> b.mkv: Invalid data found (item <n>)",
    )
    assert failures.classify("Timed out after 300 seconds.") == ("TimeoutException", "Timed out after <n> seconds.")
    assert failures.classify(None) == ("JobFailed", "(no reason given)")
    assert failures.classify("TMDb answered 503 (after 3 attempts)") == ("TransientJobError", "TMDb answered <n>")


def test_failed_jobs_are_grouped_by_kind_exception_and_normalised_message():
    for item in (3, 17, 250):
        make_job("media.probe", JobStatus.FAILED, error=f"ffprobe could not read /lib/films/{item}.mkv (item {item})")
    make_job("media.thumbnail", JobStatus.FAILED, error="ffprobe could not read /lib/films/9.mkv (item 9)")
    make_job("media.probe", JobStatus.FAILED, error="Unexpected error: OSError: disk full")
    make_job("media.probe", JobStatus.SUCCEEDED)
    groups = failures.failure_groups()
    assert [(g.kind, g.exception, g.count) for g in groups] == [
        ("media.probe", "JobFailed", 3),
        ("media.probe", "OSError", 1),
        ("media.thumbnail", "JobFailed", 1),
    ]
    assert len({g.fingerprint for g in groups}) == 3


def test_the_failures_page_lists_each_group_with_a_retry_button(staff_client):
    for item in (1, 2):
        make_job("media.probe", JobStatus.FAILED, error=f"corrupt item {item}")
    page = staff_client.get(FAILURES).content.decode()
    (group,) = failures.failure_groups()
    assert f'data-fingerprint="{group.fingerprint}"' in page
    assert 'value="Retry this group"' in page
    assert "corrupt item &lt;n&gt;" in page


def test_retrying_a_group_queues_each_of_its_jobs_again_and_writes_each_to_the_admin_log(
    staff_client, staff, django_capture_on_commit_callbacks
):
    grouped = [make_job("media.probe", JobStatus.FAILED, error=f"corrupt item {i}") for i in range(3)]
    other = make_job("media.probe", JobStatus.FAILED, error="Unexpected error: OSError: disk full")
    (group,) = [g for g in failures.failure_groups() if g.exception == "JobFailed"]
    # First the count and the jobs by name; nothing is retried yet.
    asked = staff_client.post(RETRY_GROUP, {"fingerprint": group.fingerprint})
    assert asked.status_code == 200
    assert "Retry 3 jobs?" in asked.content.decode()
    assert all(f"media.probe #{j.pk}" in asked.content.decode() for j in grouped)
    assert {job.status for job in Job.objects.filter(pk__in=[j.pk for j in grouped])} == {JobStatus.FAILED}
    response = staff_client.post(RETRY_GROUP, {"fingerprint": group.fingerprint, "post": "yes"})
    assert response.status_code == 302
    assert {job.status for job in Job.objects.filter(pk__in=[j.pk for j in grouped])} == {JobStatus.QUEUED}
    other.refresh_from_db()
    assert other.status == JobStatus.FAILED
    entries = LogEntry.objects.filter(user=staff, action_flag=CHANGE)
    assert sorted(int(e.object_id) for e in entries) == sorted(j.pk for j in grouped)
    assert all(group.fingerprint in e.change_message for e in entries)


def test_retrying_a_group_needs_permission_to_change_jobs(db):
    viewer = make_user("viewer")
    viewer.is_staff = True
    viewer.save(update_fields=["is_staff"])
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    job = make_job("media.probe", JobStatus.FAILED, error="corrupt")
    client = Client()
    client.force_login(viewer)
    assert client.get(FAILURES).status_code == 200
    assert 'value="Retry this group"' not in client.get(FAILURES).content.decode()
    (group,) = failures.failure_groups()
    assert client.post(RETRY_GROUP, {"fingerprint": group.fingerprint}).status_code == 403
    assert client.post(RETRY_GROUP, {"fingerprint": group.fingerprint, "post": "yes"}).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_retrying_a_group_asks_for_a_post(staff_client):
    assert staff_client.get(RETRY_GROUP).status_code == 405


# --- The admin log of job actions -----------------------------------------------------


def test_cancel_and_retry_through_the_api_are_written_to_the_admin_log(alice, alice_api):
    job = make_job("media.probe", JobStatus.QUEUED, requested_by=alice)
    assert alice_api.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 200
    assert alice_api.post(f"/api/v1/jobs/{job.pk}/retry/").status_code == 202
    messages = list(
        LogEntry.objects.filter(user=alice, object_id=str(job.pk))
        .order_by("pk")
        .values_list("change_message", flat=True)
    )
    assert messages == ["Cancelled.", "Retried."]


def test_a_refused_action_writes_nothing_to_the_admin_log(alice, alice_api):
    job = make_job("media.probe", JobStatus.SUCCEEDED, requested_by=alice)
    assert alice_api.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 409
    assert not LogEntry.objects.exists()


def test_asking_a_running_job_to_stop_is_written_to_the_admin_log(staff, staff_api):
    job = make_job("media.transcode", JobStatus.RUNNING)
    staff_api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    entry = LogEntry.objects.get(user=staff, object_id=str(job.pk))
    assert entry.change_message == "Asked its worker to cancel it."


def test_bulk_actions_in_the_job_admin_are_written_to_the_admin_log(staff_client, staff):
    jobs = [make_job("media.probe", JobStatus.FAILED, error="x") for _ in range(2)]
    staff_client.post(
        reverse("admin:offload_job_changelist"),
        {"action": "retry_jobs", "_selected_action": [j.pk for j in jobs], "post": "yes"},
    )
    assert LogEntry.objects.filter(user=staff, action_flag=CHANGE, change_message="Retried.").count() == 2


def test_jobs_queued_from_the_admin_are_written_to_the_admin_log(staff_client, staff, alice, tmp_path):
    library = Library.objects.create(name="Films", path=str(tmp_path), owner=alice)
    staff_client.post(reverse("admin:offload_library_changelist"), {"action": "scan", "_selected_action": [library.pk]})
    job = Job.objects.get(kind="library.scan")
    entry = LogEntry.objects.get(user=staff, object_id=str(job.pk))
    assert entry.action_flag == ADDITION
