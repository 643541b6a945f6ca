"""Two qclusters on two hosts, one PostgreSQL: they share the queue, and each job runs exactly once."""

from collections import Counter

import pytest
from django_q.conf import Conf
from django_q.status import Stat

from offload.jobs import enqueue
from offload.models import Job, JobEvent
from tests.support.cluster import wait_for
from tests.support.scaleout.hosts import own_hostnames_allowed, task_name

pytestmark = pytest.mark.slow

JOBS = 100


def live_clusters() -> list:
    """django-q2's view of the clusters serving our queue, as the admin's dashboard reads it."""
    return [stat for stat in Stat.get_all() if stat.status != Conf.STOPPED]


def test_two_clusters_on_two_hosts_share_the_queue_and_run_each_job_once(host_cluster):
    # Same OFFLOAD_Q_NAME on both hosts: with the ORM broker the name *is* the queue.
    first = host_cluster("worker-a")
    second = host_cluster("worker-b")
    wait_for(lambda: len(live_clusters()) == 2, timeout=30, what="both clusters reporting in", cluster=second)

    jobs = [enqueue("system.noop", params={"n": n})[0] for n in range(JOBS)]
    ids = [job.pk for job in jobs]
    wait_for(
        lambda: Job.objects.filter(pk__in=ids, status="succeeded").count() == JOBS,
        timeout=60,
        what=f"{JOBS} no-op jobs",
        cluster=first,
    )

    # Exactly once: one attempt, one "started" event, one delivery across both clusters.
    assert set(Job.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
    started = Counter(JobEvent.objects.filter(job_id__in=ids, event="started").values_list("job_id", flat=True))
    assert set(started) == set(ids) and set(started.values()) == {1}
    on_first, on_second = first.task_names(), second.task_names()
    assert len(on_first) == len(set(on_first)) and len(on_second) == len(set(on_second))
    assert not set(on_first) & set(on_second)
    assert set(on_first) | set(on_second) == {task_name(job.task_id) for job in Job.objects.filter(pk__in=ids)}
    # Both hosts took a share.
    assert on_first and on_second, (len(on_first), len(on_second))

    # What tells the clusters apart is django-q2's cluster id (its humanhash in the logs and
    # the admin) and the host it reports, never the name, which both share.
    clusters = live_clusters()
    assert len({stat.cluster_id for stat in clusters}) == 2
    if own_hostnames_allowed():
        assert {stat.host for stat in clusters} == {"worker-a", "worker-b"}
