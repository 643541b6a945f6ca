"""`GET /metrics`: the series docs/api.md lists, emitted where the work happens, summed over processes."""

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import transaction
from django.utils import timezone
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from offload import jobs
from offload.jobs import kinds, runner
from offload.lib import limits
from offload.metrics.services import lanes
from offload.models import Job, JobStatus, Library
from tests.support.cluster import wait_for
from tests.support.servers import run_script

DOCUMENTED_SERIES = (
    "offload_jobs_enqueued_total",
    "offload_jobs_finished_total",
    "offload_job_duration_seconds_bucket",
    "offload_job_queue_wait_seconds_bucket",
    "offload_queue_depth",
    "offload_search_sync_lag_seconds_bucket",
    "offload_ratelimit_decisions_total",
    "offload_ws_connections",
)


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """A sample's value, 0 when no process has written it yet (so counts compare as deltas)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.content.decode())


def run_inline(job: Job) -> None:
    """Deliver the job's task in this process, as a worker would."""
    runner.execute(job.pk)


# --- The endpoint -------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_is_open_by_default_and_has_every_contract_series(client, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = jobs.enqueue("system.noop", user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        run_inline(job)
    limits.acquire("metrics-test", uuid.uuid4().hex, 5, 60)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {name for name, _ in parse(response.content.decode())}
    assert set(DOCUMENTED_SERIES) <= names
    # django-prometheus' own series: requests, database and cache.
    assert {"django_http_requests_total_by_method_total", "django_db_execute_total", "django_cache_get_total"} <= names


@pytest.mark.django_db
def test_with_a_metrics_token_a_scrape_needs_it_as_a_bearer_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    # No address allowed without the token (docs/api.md: others get 403).
    settings.OFFLOAD_METRICS_ALLOWED_IPS = []
    refused = client.get("/metrics")
    assert refused.status_code == 403
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Token s3cret-token").status_code == 403
    answered = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert answered.status_code == 200
    assert b"offload_queue_depth" in answered.content


# --- Emitted by the job spine ---------------------------------------------------------


@pytest.mark.django_db
def test_a_job_is_counted_as_each_of_its_transitions_commits(client, alice, django_capture_on_commit_callbacks):
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = jobs.enqueue("system.noop", user=alice)
    queued = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        run_inline(job)
    after = scrape(client)
    kind = {"kind": "system.noop"}
    assert delta(before, queued, "offload_jobs_enqueued_total", **kind) == 1
    assert delta(before, queued, "offload_jobs_finished_total", **kind, status="succeeded") == 0
    assert delta(queued, after, "offload_jobs_finished_total", **kind, status="succeeded") == 1
    assert delta(queued, after, "offload_job_duration_seconds_count", **kind) == 1
    assert delta(queued, after, "offload_job_queue_wait_seconds_count", **kind) == 1


@pytest.mark.django_db
def test_every_attempt_observes_its_queue_wait_from_when_it_was_due(client, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = jobs.enqueue("system.noop", user=alice)
        run_inline(job)
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        # An operator's retry an hour after the job was made: its wait starts at the retry.
        Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, created_at=timezone.now() - timedelta(hours=1))
        jobs.retry(job, alice)
        run_inline(job)
    after = scrape(client)
    kind = {"kind": "system.noop"}
    assert delta(before, after, "offload_job_queue_wait_seconds_count", **kind) == 1
    assert delta(before, after, "offload_job_queue_wait_seconds_sum", **kind) < 60


@pytest.mark.django_db
def test_an_enqueue_that_rolls_back_is_not_counted(client, alice, django_capture_on_commit_callbacks):
    before = value(scrape(client), "offload_jobs_enqueued_total", kind="system.noop")

    class Abandon(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Abandon), transaction.atomic():
        jobs.enqueue("system.noop", user=alice)
        raise Abandon
    assert not Job.objects.exists()
    assert value(scrape(client), "offload_jobs_enqueued_total", kind="system.noop") == before


@pytest.mark.django_db
def test_a_failed_job_and_a_cancelled_one_are_counted_by_status_and_a_retry_enqueues_again(
    client, alice, django_capture_on_commit_callbacks
):
    kind = {"kind": "system.sleep"}
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = jobs.enqueue("system.sleep", params={"seconds": 0.1}, user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.cancel(job, alice)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.retry(job, alice)
    with django_capture_on_commit_callbacks(execute=True):
        claimed = jobs.claim(job.pk)
        jobs.fail(claimed, "ffprobe could not read it")
    after = scrape(client)
    assert delta(before, after, "offload_jobs_enqueued_total", **kind) == 2
    assert delta(before, after, "offload_jobs_finished_total", **kind, status="cancelled") == 1
    assert delta(before, after, "offload_jobs_finished_total", **kind, status="failed") == 1
    # A job cancelled before it started never ran: it has no duration.
    assert delta(before, after, "offload_job_duration_seconds_count", **kind) == 1


@pytest.mark.django_db
def test_a_backoff_and_a_deferral_put_a_job_back_without_counting_it_as_enqueued_again(
    client, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = jobs.enqueue("system.noop", user=alice)
    before = scrape(client)
    for put_back in (lambda j: jobs.fail_or_retry(j, "the disk was busy"), lambda j: jobs.defer(j, "locked", 0)):
        Job.objects.filter(pk=job.pk).update(queued_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            assert put_back(jobs.claim(job.pk))
    after = scrape(client)
    kind = {"kind": "system.noop"}
    assert delta(before, after, "offload_jobs_enqueued_total", **kind) == 0
    # Each attempt's start was timed, and nothing finished.
    assert delta(before, after, "offload_job_queue_wait_seconds_count", **kind) == 2
    assert delta(before, after, "offload_jobs_finished_total", **kind, status="succeeded") == 0


# --- Read from the database at scrape time ---------------------------------------------


def a_job(kind: str, status: str, age: timedelta = timedelta(0), **fields) -> Job:
    made = timezone.now() - age
    fields = {"created_at": made, "queued_at": made, **fields}
    return Job.objects.create(kind=kind, status=status, params_hash=uuid.uuid4().hex, **fields)


@pytest.mark.django_db
def test_queue_depth_running_jobs_and_the_oldest_queued_age_are_read_from_the_database(client):
    a_job("media.probe", JobStatus.QUEUED, timedelta(minutes=3))
    a_job("media.probe", JobStatus.QUEUED, timedelta(hours=2))
    a_job("media.probe", JobStatus.RUNNING, timedelta(days=1))
    a_job("media.transcode", JobStatus.RUNNING)
    a_job("media.probe", JobStatus.FAILED, timedelta(days=3))
    samples = scrape(client)
    assert value(samples, "offload_queue_depth", kind="media.probe") == 2
    assert value(samples, "offload_jobs_running", kind="media.probe") == 1
    assert value(samples, "offload_jobs_running", kind="media.transcode") == 1
    assert 2 * 3600 <= value(samples, "offload_queue_oldest_age_seconds", kind="media.probe") < 3 * 3600
    assert value(samples, "offload_database_up") == 1


@pytest.mark.django_db
def test_the_oldest_queued_age_counts_from_when_a_job_was_due(client):
    now = timezone.now()
    # Made a day ago and retried just now; waiting out a backoff.
    a_job("media.probe", JobStatus.QUEUED, timedelta(days=1), queued_at=now - timedelta(seconds=30))
    a_job("media.enrich", JobStatus.QUEUED, timedelta(hours=2), queued_at=now + timedelta(minutes=4))
    samples = scrape(client)
    assert 30 <= value(samples, "offload_queue_oldest_age_seconds", kind="media.probe") < 600
    assert value(samples, "offload_queue_oldest_age_seconds", kind="media.enrich") == 0


@pytest.mark.django_db
def test_every_kind_reports_its_queue_depth_even_when_idle(client):
    samples = scrape(client)
    for kind in kinds.names():
        assert ("offload_queue_depth", frozenset({("kind", kind)})) in samples
        assert value(samples, "offload_queue_depth", kind=kind) == 0


@pytest.mark.django_db
def test_redis_and_the_worker_count_are_reported(client):
    samples = scrape(client)
    assert value(samples, "offload_redis_up") == 1
    # No cluster runs in this test: every lane says 0.
    for lane in lanes():
        assert ("offload_workers_alive", frozenset({("lane", lane)})) in samples
        assert value(samples, "offload_workers_alive", lane=lane) == 0


@pytest.mark.django_db
def test_with_redis_away_the_scrape_still_answers_and_says_so(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2, "IGNORE_EXCEPTIONS": True},
        }
    }
    samples = scrape(client)
    assert value(samples, "offload_redis_up") == 0
    # django-q2's cluster stats live in Redis: without it the worker count is unknown, not 0.
    assert [key for key in samples if key[0] == "offload_workers_alive"] == []
    assert value(samples, "offload_database_up") == 1


@pytest.mark.django_db
def test_a_separate_state_redis_that_is_away_counts_as_redis_down(client, settings):
    # The cache instance answers; the one holding locks, limits and the channel layer does not.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert value(scrape(client), "offload_redis_up") == 0
    assert client.get("/healthz/ready").json()["checks"]["redis"].startswith("error")


# --- Emitted elsewhere -----------------------------------------------------------------


@pytest.mark.django_db
def test_rate_limit_decisions_are_counted_by_scope_and_decision(client):
    scope, key = f"metrics-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    for _ in range(3):
        limits.acquire(scope, key, 2, 60)
    samples = scrape(client)
    assert value(samples, "offload_ratelimit_decisions_total", scope=scope, decision="allowed") == 2
    assert value(samples, "offload_ratelimit_decisions_total", scope=scope, decision="denied") == 1


@pytest.mark.django_db
def test_database_queries_cache_reads_and_requests_are_counted(client):
    before = scrape(client)
    Job.objects.count()
    from django.core.cache import cache

    cache.get("metrics-test-missing-key")
    client.get("/healthz/live")
    after = scrape(client)
    labels = {"alias": "default", "vendor": "postgresql"}
    assert value(after, "django_db_execute_total", **labels) > value(before, "django_db_execute_total", **labels)
    assert value(after, "django_cache_get_misses_total", backend="redis") > value(
        before, "django_cache_get_misses_total", backend="redis"
    )
    assert value(after, "django_http_requests_total_by_method_total", method="GET") >= (
        value(before, "django_http_requests_total_by_method_total", method="GET") + 2
    )


# --- Processes ---------------------------------------------------------------------------

_WRITER = """
import os, sys, time
from prometheus_client import Counter, Gauge
Counter("offload_jobs_finished_total", "", ["kind", "status"]).labels("system.noop", "succeeded").inc(5)
Gauge("offload_ws_connections", "", multiprocess_mode="livesum").set(int(sys.argv[1]))
print("written", flush=True)
if sys.argv[2] == "stay":
    time.sleep(60)
"""


def _writer(folder: Path, connections: int, stay: bool) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(connections), "stay" if stay else "exit"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "written"
    return proc


@pytest.mark.django_db
def test_a_dead_process_keeps_its_counts_but_its_live_gauge_is_forgotten(client, tmp_path, monkeypatch):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    dead = _writer(folder, connections=7, stay=False)
    dead.wait(10)
    alive = _writer(folder, connections=3, stay=True)
    try:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
        samples = scrape(client)
    finally:
        alive.kill()
        alive.wait(10)
    assert value(samples, "offload_jobs_finished_total", kind="system.noop", status="succeeded") == 10
    assert value(samples, "offload_ws_connections") == 3


def test_make_run_empties_the_metrics_folder_of_a_previous_runs_samples(tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old")
    (folder / "README").write_text("not ours")
    run_script().reset_metrics_dir(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README"]
    run_script().reset_metrics_dir(tmp_path / "fresh")
    assert (tmp_path / "fresh").is_dir()


# --- End to end: a real uvicorn and a real qcluster sharing one folder ----------------------


def remote(server) -> dict:
    response = requests.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200
    return parse(response.text)


def pids_that_finished_jobs(folder: Path) -> set[int]:
    """The processes whose own sample file counts finished jobs: the workers."""
    return {
        int(path.stem.split("_")[-1])
        for path in folder.glob("counter_*.db")
        for key, *_ in MmapedDict.read_all_values_from_file(str(path))
        if json.loads(key)[0] == "offload_jobs_finished"
    }


def scraped_when(server, predicate, what: str, cluster) -> dict:
    """Scrape until predicate(samples) holds; the samples then."""
    found: list[dict] = []

    def check() -> bool:
        found[:] = [remote(server)]
        return predicate(found[0])

    wait_for(check, what=what, cluster=cluster)
    return found[0]


@pytest.fixture
def shared_folder(tmp_path) -> Path:
    """The metrics folder of the servers under test: this test process writes elsewhere."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    return folder


@pytest.mark.slow
def test_one_scrape_shows_the_counts_of_the_web_server_and_every_worker_process(
    asgi_server, qcluster, alice, library_root, shared_folder
):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared_folder), "OFFLOAD_Q_WORKERS": "2"}
    server = asgi_server(**env)
    cluster = qcluster(**env)
    # Two sleepers at once keep both workers busy, so both worker processes count.
    sleepers = [jobs.enqueue("system.sleep", params={"seconds": 1.5, "n": n}, user=alice)[0] for n in range(2)]
    noops = [jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(5)]
    # And one job the web server enqueues: a scan asked for through the API.
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    token = Token.objects.get_or_create(user=alice)[0].key
    scan = requests.post(
        f"{server.url}/api/v1/libraries/{library.pk}/scan/", headers={"Authorization": f"Token {token}"}
    )
    assert scan.status_code == 202
    all_jobs = [*sleepers, *noops, Job.objects.get(kind="library.scan")]
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in all_jobs], status=JobStatus.SUCCEEDED).count() == 8,
        what="every job to succeed",
        cluster=cluster,
    )
    samples = scraped_when(
        server,
        lambda s: value(s, "offload_jobs_finished_total", kind="library.scan", status="succeeded") == 1,
        what="the scan's count",
        cluster=cluster,
    )
    assert value(samples, "offload_jobs_finished_total", kind="system.noop", status="succeeded") == 5
    assert value(samples, "offload_jobs_finished_total", kind="system.sleep", status="succeeded") == 2
    assert value(samples, "offload_job_duration_seconds_count", kind="system.sleep") == 2
    assert value(samples, "offload_job_queue_wait_seconds_count", kind="system.noop") == 5
    # Enqueued by the web server's process (this test process writes to another folder).
    assert value(samples, "offload_jobs_enqueued_total", kind="library.scan") == 1
    assert value(samples, "django_http_requests_total_by_method_total", method="POST") >= 1
    assert len(pids_that_finished_jobs(shared_folder)) == 2


@pytest.mark.slow
def test_counts_never_go_backwards_when_a_worker_is_replaced(asgi_server, qcluster, alice, shared_folder):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared_folder), "OFFLOAD_Q_WORKERS": "1"}
    server = asgi_server(**env)
    cluster = qcluster(**env)
    first = [jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(3)]
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in first], status=JobStatus.SUCCEEDED).count() == 3,
        what="the first jobs",
        cluster=cluster,
    )
    done = "offload_jobs_finished_total"
    assert value(remote(server), done, kind="system.noop", status="succeeded") == 3
    (worker,) = pids_that_finished_jobs(shared_folder)
    # The worker dies in the middle of a job (killed while waiting on the task queue, it
    # could take the queue's lock with it); the cluster's guard starts a new one.
    sleeper, _ = jobs.enqueue("system.sleep", params={"seconds": 60}, user=alice)
    wait_for(lambda: Job.objects.get(pk=sleeper.pk).status == JobStatus.RUNNING, what="the sleeper", cluster=cluster)
    os.kill(worker, signal.SIGKILL)
    # The dead worker's counts stay in the sum.
    assert value(remote(server), done, kind="system.noop", status="succeeded") == 3
    second = [jobs.enqueue("system.noop", params={"n": n}, user=alice)[0] for n in range(3, 5)]
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in second], status=JobStatus.SUCCEEDED).count() == 2,
        what="jobs run by the new worker",
        cluster=cluster,
    )
    scraped_when(
        server,
        lambda s: value(s, done, kind="system.noop", status="succeeded") == 5,
        what="the new worker's counts to add to the old one's",
        cluster=cluster,
    )
    assert len(pids_that_finished_jobs(shared_folder)) == 2


@pytest.mark.slow
def test_the_websocket_gauge_follows_open_connections(asgi_server, alice, shared_folder):
    server = asgi_server(PROMETHEUS_MULTIPROC_DIR=str(shared_folder))
    token = Token.objects.get_or_create(user=alice)[0].key
    with ExitStack() as stack:
        for _ in range(2):
            ws = stack.enter_context(connect(f"{server.ws_url}/ws/events/", origin=server.url, open_timeout=10))
            ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        assert value(remote(server), "offload_ws_connections") == 2
        ws.close()
        scraped_when(server, lambda s: value(s, "offload_ws_connections") == 1, what="the closed socket", cluster=None)
    scraped_when(server, lambda s: value(s, "offload_ws_connections") == 0, what="no socket open", cluster=None)


def test_an_empty_sample_file_left_by_a_killed_process_does_not_break_the_scrape(tmp_path, monkeypatch, db):
    from offload.metrics import registry as offload_metrics

    monkeypatch.setattr(offload_metrics, "multiprocess_dir", lambda: str(tmp_path))
    (tmp_path / "histogram_999999.db").write_bytes(b"")
    text = offload_metrics.scrape().decode()
    assert "offload_queue_depth" in text or "offload_database_up" in text
    assert not (tmp_path / "histogram_999999.db").exists()
