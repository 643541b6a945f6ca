"""Liveness and readiness: each dependency and each worker lane."""

import pytest

from tests.support.cluster import media_lane, wait_for


def test_live_answers_while_the_process_serves(anon_api):
    response = anon_api.get("/healthz/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_reports_each_dependency(anon_api, typesense):
    response = anon_api.get("/healthz/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["search"] == "ok"
    # No cluster runs in this test: the app is up but degraded.
    assert body["checks"]["workers"] == "none running"
    assert body["status"] == "degraded"


@pytest.mark.django_db
def test_ready_says_degraded_when_typesense_is_unreachable(anon_api, settings):
    settings.TYPESENSE_URL = "http://127.0.0.1:9"
    body = anon_api.get("/healthz/ready").json()
    assert body["status"] == "degraded"
    assert body["checks"]["search"].startswith("degraded: unreachable")


@pytest.mark.django_db
def test_ready_reports_every_declared_lane_by_name(anon_api, settings):
    checks = anon_api.get("/healthz/ready").json()["checks"]
    assert {name for name in checks if name.startswith("lane:")} == {f"lane:{lane}" for lane in settings.OFFLOAD_LANES}
    assert all(checks[f"lane:{lane}"] == "no live cluster" for lane in settings.OFFLOAD_LANES)


@pytest.mark.slow
@pytest.mark.django_db
def test_ready_is_degraded_while_a_lane_that_runs_a_kind_has_no_cluster(qcluster, anon_api):
    cluster = qcluster()
    wait_for(
        lambda: anon_api.get("/healthz/ready").json()["checks"]["lane:default"] == "ok",
        what="the default lane's heartbeat",
        cluster=cluster,
    )
    # Transcodes run in the media lane: with no cluster there they would stay queued forever.
    body = anon_api.get("/healthz/ready").json()
    assert body["checks"]["workers"] == "no live cluster in lane media"
    assert body["checks"]["lane:media"] == "no live cluster"
    assert body["status"] == "degraded"
    media = qcluster(**media_lane())
    wait_for(
        lambda: anon_api.get("/healthz/ready").json()["checks"]["workers"] == "ok",
        what="the media lane's heartbeat",
        cluster=media,
    )
    assert anon_api.get("/healthz/ready").json()["checks"]["lane:media"] == "ok"


def test_schema_is_openapi_3_and_public(anon_api):
    response = anon_api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/libraries/{id}/scan/",
        "/api/v1/media/{id}/probe/",
        "/api/v1/jobs/{id}/cancel/",
        "/api/v1/jobs/{id}/retry/",
    ):
        assert path in schema["paths"]
