"""Hostile input gets nowhere: escaping, CSRF, and tokens kept out of logs and URLs."""

import logging

from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from offload import jobs
from offload.models import Job
from tests.support.hostile import SCRIPT


def test_script_in_titles_is_escaped_in_the_admin(client, staff, hostile_item, alice):
    client.force_login(staff)
    job, _ = jobs.enqueue("media.probe", target=hostile_item, user=alice)
    pages = [
        reverse("admin:offload_mediaitem_changelist"),
        reverse("admin:offload_mediaitem_change", args=[hostile_item.pk]),
        reverse("admin:offload_library_changelist"),
        reverse("admin:offload_job_change", args=[job.pk]),
        reverse("admin:index"),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        assert SCRIPT not in html, url
    assert "&lt;script&gt;" in client.get(pages[0]).content.decode()


def test_the_api_returns_titles_as_data_not_markup(alice_api, hostile_item):
    body = alice_api.get(f"/api/v1/media/{hostile_item.pk}/")
    assert body["Content-Type"] == "application/json"
    assert body.json()["metadata"]["title"] == SCRIPT


def test_admin_actions_need_a_csrf_token(staff, hostile_item):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(
        reverse("admin:offload_mediaitem_changelist"), {"action": "probe", "_selected_action": [hostile_item.pk]}
    )
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_session_api_writes_need_a_csrf_token(alice, hostile_item):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/api/v1/media/{hostile_item.pk}/probe/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Job.objects.exists()


def test_tokens_are_accepted_only_in_the_header(alice, hostile_item, anon_api):
    key = Token.objects.create(user=alice).key
    for url in (f"/api/v1/jobs/?token={key}", f"/api/v1/jobs/?auth_token={key}", f"/api/v1/jobs/?key={key}"):
        assert anon_api.get(url).status_code == 401


def test_tokens_never_appear_in_logs(alice, hostile_item, anon_api, caplog):
    key = Token.objects.create(user=alice).key
    caplog.set_level(logging.DEBUG)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    anon_api.get("/api/v1/jobs/")
    anon_api.post(f"/api/v1/media/{hostile_item.pk}/probe/")
    anon_api.get("/api/v1/jobs/999999/")
    anon_api.credentials(HTTP_AUTHORIZATION="Token wrong-" + key[:10])
    anon_api.get("/api/v1/jobs/")
    assert caplog.records
    assert key not in caplog.text
    assert key[:10] not in caplog.text
