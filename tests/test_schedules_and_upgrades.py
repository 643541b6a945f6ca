"""Schedules follow the settings on every start; an upgrade keeps queued tasks and schedules running."""

import importlib

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import transaction
from django_q.models import OrmQ, Schedule
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from offload import jobs
from offload.jobs.events import job_event_committed
from offload.jobs.lanes import shared_broker
from offload.models import Job, JobStatus
from tests.support.jobrunner import drain

upgrade = importlib.import_module("offload.migrations.0006_dotted_paths")

pytestmark = pytest.mark.django_db


def test_changing_the_reconcile_interval_and_restarting_changes_the_schedule(settings):
    call_command("schedules")
    reconcile = Schedule.objects.get(name="search: reconcile index with database")
    assert (reconcile.minutes, reconcile.cluster) == (settings.SEARCH_RECONCILE_MINUTES, settings.SEARCH_Q_CLUSTER)
    settings.SEARCH_RECONCILE_MINUTES = 42
    settings.SEARCH_Q_CLUSTER = "search-elsewhere"
    call_command("schedules")  # what make run and the production start do after migrate
    reconcile.refresh_from_db()
    assert (reconcile.minutes, reconcile.cluster) == (42, "search-elsewhere")
    assert Schedule.objects.filter(name="search: reconcile index with database").count() == 1


def test_the_schedules_command_writes_every_registered_schedule_once():
    Schedule.objects.all().delete()
    call_command("schedules")
    call_command("schedules")
    assert set(Schedule.objects.values_list("func", flat=True)) == {
        "offload.jobs.reaper.reap_stale_jobs",
        "offload.jobs.events.prune_events",
        "offload.jobs.retention.prune_jobs",
        "offload.jobs.rollups.roll_up",
        "search.tasks.drain_pending",
        "search.tasks.reconcile",
        "offload.alerts.delivery.sweep",
        "offload.alerts.delivery.prune",
    }
    assert Schedule.objects.count() == 8


def test_a_task_queued_and_a_schedule_saved_before_the_upgrade_still_run(alice):
    # What a deployment's database held before the modules moved: a job whose task names
    # offload.runner.execute, and the schedules under their old paths.
    with transaction.atomic():
        job, _ = jobs.enqueue("system.noop", user=alice)
        OrmQ.objects.all().delete()
        async_task("offload.runner.execute", job.pk, broker=shared_broker())
    Schedule.objects.create(name="old reaper", func="offload.jobs.reap_stale_jobs", schedule_type=Schedule.MINUTES)
    Schedule.objects.create(name="old pruning", func="offload.events.prune_events", schedule_type=Schedule.HOURLY)
    assert SignedPackage.loads(OrmQ.objects.get().payload)["func"] == "offload.runner.execute"

    upgrade.rewrite(apps, None)

    assert SignedPackage.loads(OrmQ.objects.get().payload)["func"] == "offload.jobs.runner.execute"
    assert drain() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    funcs = dict(Schedule.objects.filter(name__startswith="old ").values_list("name", "func"))
    assert funcs == {
        "old reaper": "offload.jobs.reaper.reap_stale_jobs",
        "old pruning": "offload.jobs.events.prune_events",
    }
    # Each rewritten path names a function that exists.
    from pydoc import locate

    assert all(callable(locate(func)) for func in funcs.values())


def test_an_event_is_announced_once_when_its_transaction_commits_and_never_when_it_rolls_back(
    alice, django_capture_on_commit_callbacks
):
    heard = []

    def listener(sender, event, **kwargs):
        heard.append((event.event, event.job_id))

    job_event_committed.connect(listener)
    try:
        try:
            with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
                jobs.enqueue("system.noop", params={"n": 1}, user=alice)
                raise RuntimeError("abandon")
        except RuntimeError:
            pass
        assert heard == []
        with django_capture_on_commit_callbacks(execute=True):
            job, _ = jobs.enqueue("system.noop", params={"n": 2}, user=alice)
            assert heard == []
        assert heard == [("queued", job.pk)]
    finally:
        job_event_committed.disconnect(listener)
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_committed_event_is_announced_with_the_seq_it_took_at_commit_without_reading_it_back(alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from offload.models import JobEvent

    heard = []

    def listener(sender, event, **kwargs):
        heard.append((event.pk, event.seq))

    job_event_committed.connect(listener)
    try:
        with CaptureQueriesContext(connection) as queries:
            jobs.enqueue("system.noop", params={"n": 1}, user=alice)
            jobs.enqueue("system.noop", params={"n": 2}, user=alice)
    finally:
        job_event_committed.disconnect(listener)
    stored = dict(JobEvent.objects.values_list("pk", "seq"))
    assert heard == sorted(stored.items()) and heard[1][1] == heard[0][1] + 1
    # The numbers came with the COMMIT's answer: no query read them back.
    assert not [q for q in queries.captured_queries if 'FROM "offload_jobevent"' in q["sql"]]


def test_the_upgrade_counts_each_librarys_items_and_marks_the_jobs_someone_joined(alice, bob, library_root):
    from offload.models import JobMember, Library, MediaItem

    count_items = importlib.import_module("offload.migrations.0012_library_item_count").count_items
    mark_joined_jobs = importlib.import_module("offload.migrations.0013_job_has_members").mark_joined_jobs
    full = Library.objects.create(name="Full", path=str(library_root / "full"), owner=alice)
    empty = Library.objects.create(name="Empty", path=str(library_root / "empty"), owner=alice)
    MediaItem.objects.bulk_create(MediaItem(library=full, relative_path=f"{n}.mp4") for n in range(3))
    joined, _ = jobs.enqueue("library.scan", target=full, user=alice)
    alone, _ = jobs.enqueue("library.scan", target=empty, user=alice)
    JobMember.objects.create(job=joined, user=bob, joined_after_seq=0)
    # As the tables stood before the columns existed.
    Library.objects.update(item_count=0)
    Job.objects.update(has_members=False)

    count_items(apps, None)
    mark_joined_jobs(apps, None)

    assert dict(Library.objects.values_list("name", "item_count")) == {"Full": 3, "Empty": 0}
    assert set(Job.objects.filter(has_members=True).values_list("pk", flat=True)) == {joined.pk}
    assert not Job.objects.get(pk=alone.pk).has_members
