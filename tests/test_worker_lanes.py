"""Workers are counted per lane, from cluster state kept in the non-evicting state Redis."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.cache import caches
from django_q.conf import Conf
from prometheus_client.parser import text_string_to_metric_families

from offload.metrics.services import lanes
from tests.support.cluster import BASE_DIR, wait_for


def workers_alive(client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.labels["lane"]: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name == "offload_workers_alive"
    }


def test_every_lane_has_its_own_series_and_the_settings_name_both():
    assert lanes() == ["default", "media", "search", "notify"]
    assert list(settings.OFFLOAD_LANES.values()) == [
        settings.Q_CLUSTER["name"],
        settings.MEDIA_Q_CLUSTER,
        settings.SEARCH_Q_CLUSTER,
        settings.NOTIFY_Q_CLUSTER,
    ]


@pytest.mark.django_db
def test_with_no_cluster_running_every_lane_reports_zero(client):
    assert workers_alive(client) == {lane: 0 for lane in lanes()}


@pytest.mark.slow
def test_a_dead_lane_beside_a_live_one_shows_as_zero(client, qcluster):
    default, search = "default", "search"
    workers = settings.Q_CLUSTER["workers"]
    main = qcluster()
    wait_for(lambda: workers_alive(client)[default] == workers, what="the default lane", cluster=main)
    assert workers_alive(client)[search] == 0
    lane = qcluster(Q_CLUSTER_NAME=settings.SEARCH_Q_CLUSTER)
    wait_for(lambda: workers_alive(client)[search] > 0, what="the search lane", cluster=lane)
    lane.kill()
    # The dead lane's stat expires within seconds; the live lane keeps its count.
    wait_for(lambda: workers_alive(client)[search] == 0, what="the search lane's count to drop")
    assert workers_alive(client)[default] == workers


def test_django_q2s_cluster_state_is_kept_in_the_state_redis_not_the_cache():
    env = {
        **os.environ,
        "REDIS_URL": "redis://state.invalid:6379/1",
        "REDIS_CACHE_URL": "redis://cache.invalid:6379/2",
    }
    code = (
        "import json, django; django.setup(); from django.conf import settings; from django_q.conf import Conf;"
        "print(json.dumps([settings.CACHES[Conf.CACHE]['LOCATION'], settings.CACHES['default']['LOCATION']]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        "redis://state.invalid:6379/1",
        "redis://cache.invalid:6379/2",
    ]


def test_the_state_cache_alias_keeps_the_key_prefix_and_fails_open():
    state = settings.CACHES[Conf.CACHE]
    assert Conf.CACHE == "state"
    assert state["LOCATION"] == settings.REDIS_URL
    assert state["KEY_PREFIX"] == settings.REDIS_KEY_PREFIX
    assert caches["state"].get("missing-key") is None
