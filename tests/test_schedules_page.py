"""The Schedules page: each periodic task's lane, interval, last run and next run, and "Run now"."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule
from django_q.signing import SignedPackage

from offload.jobs.lanes import broker_for
from offload.jobs.schedules import last_runs, note_start, record_run, sync_schedules
from offload.lib.redis_state import key, state_redis
from tests.support.people import staff_client_with

pytestmark = pytest.mark.django_db

PAGE = "/admin/operations/schedules/"
RUN = "/admin/operations/schedules/run/"
REAPER = "offload: re-queue jobs whose worker was lost"


@pytest.fixture
def schedules():
    state_redis().delete(key("schedule-runs"))
    sync_schedules()
    yield {s.name: s for s in Schedule.objects.all()}
    state_redis().delete(key("schedule-runs"))


def row_of(html: str, schedule: Schedule) -> str:
    return re.search(rf'<tr data-schedule="{schedule.pk}">(.*?)</tr>', html, re.S).group(1)


def test_every_schedule_is_listed_with_its_lane_interval_and_next_run(admin_client, schedules):
    html = admin_client.get(PAGE).content.decode()
    assert len(re.findall(r'<tr data-schedule="\d+">', html)) == len(schedules)
    reaper = row_of(html, schedules[REAPER])
    assert "<td>every 1 min</td>" in reaper
    assert "<td>default</td>" in reaper
    next_run = re.search(r'data-field="next-run">([^<]+)<', reaper).group(1)
    assert next_run.endswith(" UTC")
    assert re.search(r'data-field="last-run" title="No run recorded since[^"]*">—<', reaper)
    assert "?" not in re.sub(r"<[^>]+>", "", reaper)


def test_a_run_a_worker_recorded_shows_its_time_duration_and_outcome(admin_client, schedules):
    started = timezone.now() - timedelta(seconds=30)
    # Queued a minute before a worker took it: the run is counted from when it ran.
    task = {"group": REAPER, "started": started - timedelta(minutes=1), "success": True}
    note_start(None, task=task)
    task.update(ran_at=started, stopped=started + timedelta(seconds=2.5))
    record_run(None, task=task)
    reaper = row_of(admin_client.get(PAGE).content.decode(), schedules[REAPER])
    assert re.search(r'data-field="last-run">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC<', reaper)
    assert "succeeded</span>\n        in 2.5 s" in reaper
    failed = {**task, "success": False, "result": "ValueError: boom : Traceback …\nmore"}
    record_run(None, task=failed)
    reaper = row_of(admin_client.get(PAGE).content.decode(), schedules[REAPER])
    assert "failed</span>" in reaper and "<br>ValueError: boom" in reaper and "more" not in reaper


def test_run_now_queues_the_schedules_task_on_its_lane(admin_client, schedules):
    reaper = schedules[REAPER]
    broker = broker_for(reaper.cluster or "offload")
    before = broker.queue_size()
    done = admin_client.post(RUN, {"schedule": reaper.pk}, follow=True)
    assert f"Queued {REAPER} to run now" in done.content.decode()
    assert broker.queue_size() == before + 1
    tasks = [SignedPackage.loads(payload) for _, payload in broker.dequeue()]
    assert any(t["func"] == reaper.func and t["group"] == REAPER for t in tasks)
    assert Schedule.objects.get(pk=reaper.pk).next_run == reaper.next_run


def test_run_now_needs_the_permission_to_steer_queues(schedules):
    client = staff_client_with("watcher", "view_job")
    assert ">Run now</button>" not in client.get(PAGE).content.decode()
    assert client.post(RUN, {"schedule": schedules[REAPER].pk}).status_code == 403


def test_an_unknown_schedule_says_so(admin_client, schedules):
    done = admin_client.post(RUN, {"schedule": "999999"}, follow=True)
    assert "No such schedule." in done.content.decode()
    assert admin_client.post(RUN, {"schedule": "x"}, follow=True).status_code == 200


def test_the_operations_bar_links_the_schedules(admin_client):
    html = admin_client.get("/admin/").content.decode()
    nav = html[html.index('<nav id="offload-nav"') :]
    assert f'href="{PAGE}"' in nav[: nav.index("</nav>")]


@pytest.mark.slow
def test_a_real_worker_records_the_run_that_run_now_asked_for(qcluster, staff):
    from tests.support.cluster import wait_for

    state_redis().delete(key("schedule-runs"))
    sync_schedules()
    reaper = Schedule.objects.get(name=REAPER)
    cluster = qcluster()
    client = Client()
    client.force_login(staff)
    client.post(RUN, {"schedule": reaper.pk})
    wait_for(lambda: REAPER in last_runs(), what="the worker to record the run", cluster=cluster)
    run = last_runs()[REAPER]
    assert run["success"] is True and run["started"] <= run["stopped"]
    assert "succeeded" in row_of(client.get(PAGE).content.decode(), reaper)
