"""OFFLOAD_Q_BROKER=redis: jobs leave for Redis only once they commit, delays become schedules, and a
real web server and qcluster on the Redis broker run jobs end to end."""

import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
import redis
import requests
from django.db import transaction
from django.utils import timezone
from django_q.brokers import redis_broker
from django_q.models import OrmQ, Schedule
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage

from offload import jobs
from offload.checks import check_q_cluster
from offload.jobs import queue, reaper
from offload.jobs.kinds import get_kind
from offload.models import Job, JobStatus, Library, MediaItem
from tests.support.cluster import BASE_DIR, wait_for
from tests.support.media import make_video
from tests.test_websocket import token_of


class TestRedisBroker(redis_broker.Redis):
    """django-q2's Redis broker on the tests' Redis (this process's own Conf is the ORM broker's)."""

    __test__ = False

    @staticmethod
    def get_connection(list_key: str | None = None) -> redis.Redis:
        from django.conf import settings

        return redis.from_url(settings.REDIS_URL)

    def tasks(self) -> list[dict]:
        """Every task waiting in the queue, oldest first, unsigned."""
        return [SignedPackage.loads(raw) for raw in self.connection.lrange(self.list_key, 0, -1)]


@pytest.fixture
def redis_queue(settings, monkeypatch):
    """Q_CLUSTER as OFFLOAD_Q_BROKER=redis makes it, and the spine's shared broker on Redis."""
    q_cluster = {key: value for key, value in settings.Q_CLUSTER.items() if key != "orm"}
    settings.Q_CLUSTER = {**q_cluster, "redis": settings.REDIS_URL}
    broker = TestRedisBroker(list_key=f"scale-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(queue, "broker_for", lambda list_key: broker)
    yield broker
    broker.delete_queue()


@pytest.mark.django_db
def test_a_job_reaches_redis_only_when_its_transaction_commits(redis_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = jobs.enqueue("system.noop", params={"n": 1})
        assert redis_queue.tasks() == []
    (task,) = redis_queue.tasks()
    assert task["func"] == queue.EXECUTE and task["args"] == (job.pk,)
    job.refresh_from_db()
    assert job.task_id == task["id"]


@pytest.mark.django_db
def test_a_rolled_back_job_never_reaches_redis(redis_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            jobs.enqueue("system.noop", params={"n": 2})
            raise RuntimeError("the request failed after queueing")
    assert callbacks == []
    assert redis_queue.tasks() == []
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_delayed_attempt_waits_as_a_one_off_schedule_until_the_scheduler_pushes_it(
    redis_queue, django_capture_on_commit_callbacks, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = jobs.enqueue("system.noop", params={"n": 3})
    redis_queue.delete_queue()
    job = jobs.claim(job.pk)

    assert jobs.defer(job, "the scanner is busy", delay=30)
    due = Schedule.objects.get(func=queue.EXECUTE)
    assert due.schedule_type == Schedule.ONCE and due.args == f"({job.pk},)"
    assert timezone.now() + timedelta(seconds=20) < due.next_run < timezone.now() + timedelta(seconds=40)
    assert Job.objects.get(pk=job.pk).task_id == f"schedule:{due.pk}"
    assert redis_queue.tasks() == []

    # Once due, the cluster's scheduler hands it to the broker, with the attempt's timeout.
    Schedule.objects.filter(pk=due.pk).update(next_run=timezone.now() - timedelta(seconds=1))
    # (In a cluster it first closes stale connections; here that one holds the test's transaction.)
    monkeypatch.setattr("django_q.scheduler.close_old_django_connections", lambda: None)
    scheduler(broker=redis_queue)
    assert not Schedule.objects.filter(pk=due.pk).exists()
    (task,) = [t for t in redis_queue.tasks() if t["func"] == queue.EXECUTE]
    assert task["args"] == (job.pk,)
    assert task["timeout"] == get_kind("system.noop").timeout_for(job)


@pytest.mark.django_db
def test_the_reaper_pushes_a_job_whose_push_after_commit_was_lost(
    redis_queue, settings, django_capture_on_commit_callbacks
):
    long_ago = timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 5)
    lost = Job.objects.create(
        kind="system.noop",
        params={"n": 4},
        params_hash="lost",
        status=JobStatus.QUEUED,
        created_at=long_ago,
        queued_at=long_ago,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert reaper.reap_stale_jobs() == 1
    (task,) = redis_queue.tasks()
    assert task["args"] == (lost.pk,)
    assert Job.objects.get(pk=lost.pk).task_id == task["id"]


def test_the_orm_queue_must_be_the_default_database_only_when_it_is_used(settings):
    without_orm = {key: value for key, value in settings.Q_CLUSTER.items() if key != "orm"}
    settings.Q_CLUSTER = {**without_orm, "redis": settings.REDIS_URL}
    assert "offload.E005" not in [e.id for e in check_q_cluster()]
    settings.Q_CLUSTER = {**without_orm, "orm": "replica"}
    assert "offload.E005" in [e.id for e in check_q_cluster()]


def test_offload_q_broker_redis_configures_django_q2_and_passes_the_checks():
    env = {"OFFLOAD_Q_BROKER": "redis", "LOG_LEVEL": "ERROR"}
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.conf import settings; from django_q.brokers import get_broker; "
         "from django_q.brokers.redis_broker import Redis; broker = get_broker(); "
         "print(sorted(k for k in ('orm', 'redis') if k in settings.Q_CLUSTER), isinstance(broker, Redis), "
         "type(broker).__name__)"],
        cwd=BASE_DIR, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    # django-q2's Redis broker (offload.jobs.lanes adds each cluster's lane to its stats).
    assert shown.stdout.splitlines()[-1].split() == ["['redis']", "True", "LaneRedisBroker"]
    subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "ERROR"],
        cwd=BASE_DIR, env={**os.environ, **env}, capture_output=True, timeout=60, check=True,
    )  # fmt: skip


@pytest.mark.slow
def test_a_web_server_and_a_cluster_on_the_redis_broker_run_a_job_end_to_end(
    asgi_server, qcluster, alice, library_root, settings
):
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    env = {"OFFLOAD_Q_BROKER": "redis", "OFFLOAD_Q_NAME": queue}
    web = asgi_server(**env)
    cluster = qcluster(**env)
    make_video(library_root / "clip.mp4")
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="clip.mp4")

    answer = requests.post(
        f"{web.url}/api/v1/media/{item.pk}/probe/", headers={"Authorization": f"Token {token_of(alice)}"}, timeout=10
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    wait_for(lambda: Job.objects.get(pk=job_id).status == "succeeded", timeout=60, what="the probe", cluster=cluster)

    item.refresh_from_db()
    assert item.duration and item.duration > 0
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 1 and len(job.task_id) == 32
    # The task went through Redis, never through the database queue.
    assert not OrmQ.objects.filter(key=queue).exists()
    assert redis.from_url(settings.REDIS_URL).llen(f"django_q:{queue}:q") == 0
