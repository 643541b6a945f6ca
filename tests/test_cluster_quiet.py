"""Quieting a worker cluster from the Workers panel: it finishes its jobs and takes no more, on any host."""

import os
import socket
import time
import uuid

import pytest
from django.test import Client
from django_q.brokers import get_broker
from django_q.status import Stat

from offload import jobs
from offload.jobs import quiet
from offload.jobs.lanes import broker_for, lane_queue
from offload.models import Job, JobStatus
from tests.support.cluster import wait_for
from tests.support.people import staff_client_with

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/operations/dashboard/"
QUIET = "/admin/operations/workers/quiet/"


def steerer():
    """Staff allowed to steer the queues (and so to quiet clusters)."""
    return staff_client_with("steerer", "view_job", "change_queuecontrol")


def test_a_quiet_cluster_takes_no_task_and_a_woken_one_takes_it_again(alice):
    jobs.enqueue("system.noop", params={"n": 1}, user=alice)
    broker = broker_for(lane_queue("default"))
    # This process stands for a cluster's pusher: its parent is the sentinel the flag names.
    here = (socket.gethostname(), os.getppid())
    quiet.set_quiet(*here, True)
    try:
        assert broker.dequeue() is None
        assert broker.queue_size() == 1
    finally:
        quiet.set_quiet(*here, False)
    taken = broker.dequeue()
    assert taken and len(taken) == 1


def test_quieting_another_hosts_cluster_asks_first_then_sets_its_flag(reporting_cluster):
    client = steerer()
    cluster = str(reporting_cluster.cluster_id)
    asked = client.post(QUIET, {"change": "quiet", "cluster": cluster, "where": "default on worker-host-2/40001"})
    assert asked.status_code == 200
    assert "Quiet the worker cluster <strong>default on worker-host-2/40001</strong>?" in asked.content.decode()
    assert quiet.quieted([("worker-host-2", 40002)]) == set()

    done = client.post(QUIET, {"change": "quiet", "cluster": cluster, "confirmed": "yes"}, follow=True)
    assert "Quieted the cluster on worker-host-2/40001" in done.content.decode()
    assert quiet.quieted([("worker-host-2", 40002)]) == {("worker-host-2", 40002)}
    page = client.get(DASHBOARD).content.decode()
    assert ">quiet</span>" in page and 'value="wake">Wake…</button>' in page
    # Its lane has no other cluster: the dashboard says its jobs wait.
    assert "Every cluster of lane default is quiet: its new jobs wait until one is woken" in page

    client.post(QUIET, {"change": "wake", "cluster": cluster, "confirmed": "yes"})
    assert quiet.quieted([("worker-host-2", 40002)]) == set()
    assert "is quiet:" not in client.get(DASHBOARD).content.decode()
    assert (
        'value="quiet" title="Finish its running jobs and take no more">Quiet…</button>'
        in client.get(DASHBOARD).content.decode()
    )


def test_staff_who_may_not_steer_queues_can_neither_quiet_nor_see_the_button(reporting_cluster):
    client = staff_client_with("watcher", "view_job")
    cluster = str(reporting_cluster.cluster_id)
    assert client.post(QUIET, {"change": "quiet", "cluster": cluster, "confirmed": "yes"}).status_code == 403
    assert quiet.quieted([("worker-host-2", 40002)]) == set()
    assert "Quiet…" not in client.get(DASHBOARD).content.decode()


def test_quieting_a_cluster_that_stopped_reporting_says_so(db):
    client = steerer()
    done = client.post(QUIET, {"change": "quiet", "cluster": str(uuid.uuid4()), "confirmed": "yes"}, follow=True)
    assert done.status_code == 200
    assert "No cluster with that id is reporting" in done.content.decode()


def test_quieting_needs_a_post(admin_client):
    assert admin_client.get(QUIET).status_code == 405


@pytest.mark.slow
def test_a_real_quiet_cluster_finishes_nothing_new_until_woken(qcluster, alice, staff):
    cluster = qcluster()
    wait_for(lambda: Stat.get_all(get_broker()), what="the cluster to report", cluster=cluster)
    client = Client()
    client.force_login(staff)
    for stat in Stat.get_all(get_broker()):
        client.post(QUIET, {"change": "quiet", "cluster": str(stat.cluster_id), "confirmed": "yes"})
    job, _ = jobs.enqueue("system.noop", params={"n": 1}, user=alice)
    # The cluster polls many times in these seconds (Q_CLUSTER's poll): the job still waits.
    time.sleep(3)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    for stat in Stat.get_all(get_broker()):
        client.post(QUIET, {"change": "wake", "cluster": str(stat.cluster_id), "confirmed": "yes"})
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, what="the job to run", cluster=cluster)


def test_the_job_list_names_each_jobs_lane(admin_client, alice):
    jobs.enqueue("system.noop", params={"n": 1}, user=alice)
    jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    page = admin_client.get("/admin/offload/job/").content.decode()
    assert '<th scope="col" class="column-lane_display">' in page
    lanes = {kind.name: kind.lane for kind in jobs.kinds.all_kinds()}
    assert page.count(f'<td class="field-lane_display">{lanes["system.noop"]}</td>') == 2


def test_with_redis_away_a_cluster_goes_on_taking_jobs_and_says_so_once(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    with caplog.at_level("WARNING", logger="offload.jobs.quiet"):
        assert quiet.this_cluster_is_quiet() is False
        assert quiet.this_cluster_is_quiet() is False
    assert len([r for r in caplog.records if "quiet" in r.getMessage()]) == 1
