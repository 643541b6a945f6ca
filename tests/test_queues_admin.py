"""The admin's Queues page: one row per kind, and pause, resume and cap controls that ask first and are logged."""

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from offload import jobs
from offload.models import QueueControl
from tests.support.people import make_user

QUEUES = "/admin/operations/queues/"
CHANGE = "/admin/operations/queues/change/"


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_the_page_has_a_row_per_kind_with_its_lane_and_figures(staff_client, staff):
    jobs.enqueue("system.noop", params={"n": 1}, user=staff)
    response = staff_client.get(QUEUES)
    assert response.status_code == 200
    rows = {row["kind"]: row for row in response.context["rows"]}
    assert rows["media.transcode"]["lane"] == "media"
    assert rows["system.noop"]["queued"] == 1
    page = response.content.decode()
    assert 'data-kind="media.transcode"' in page
    assert "not draining" in page


def test_the_admin_navigation_links_the_queues_page(staff_client):
    assert QUEUES in staff_client.get("/admin/").content.decode()
    assert QUEUES in staff_client.get("/admin/operations/dashboard/").content.decode()


def test_pause_asks_for_confirmation_first_and_is_logged(staff_client, staff):
    asked = staff_client.post(CHANGE, {"change": "pause", "kind": "media.probe"})
    assert asked.status_code == 200
    assert "Are you sure?" in asked.content.decode()
    assert not QueueControl.objects.exists()
    done = staff_client.post(CHANGE, {"change": "pause", "kind": "media.probe", "confirmed": "yes"})
    assert done.status_code == 302 and done["Location"] == QUEUES
    assert QueueControl.objects.get(kind="media.probe").paused
    assert LogEntry.objects.filter(user=staff, change_message="Paused media.probe.").exists()
    staff_client.post(CHANGE, {"change": "resume", "kind": "media.probe", "confirmed": "yes"})
    assert not QueueControl.objects.get(kind="media.probe").paused
    assert LogEntry.objects.filter(user=staff, change_message="Resumed media.probe.").exists()


def test_a_cap_is_confirmed_then_set_and_cleared(staff_client, staff):
    asked = staff_client.post(CHANGE, {"change": "cap", "kind": "media.transcode", "concurrency": "1"})
    assert "at most 1 at a time" in asked.content.decode()
    staff_client.post(CHANGE, {"change": "cap", "kind": "media.transcode", "concurrency": "1", "confirmed": "yes"})
    assert QueueControl.objects.get(kind="media.transcode").concurrency == 1
    staff_client.post(CHANGE, {"change": "cap", "kind": "media.transcode", "concurrency": "", "confirmed": "yes"})
    assert QueueControl.objects.get(kind="media.transcode").concurrency is None
    assert LogEntry.objects.filter(user=staff, change_message="Set media.transcode to no cap.").exists()


@pytest.mark.parametrize("concurrency", ["0", "many", "-3"])
def test_a_bad_cap_is_refused_with_a_message(staff_client, concurrency):
    given = {"change": "cap", "kind": "media.transcode", "concurrency": concurrency, "confirmed": "yes"}
    response = staff_client.post(CHANGE, given, follow=True)
    assert response.status_code == 200
    assert any("cap" in str(m) for m in response.context["messages"])
    assert not QueueControl.objects.exists()


def test_an_unknown_kind_is_refused_with_a_message(staff_client):
    response = staff_client.post(CHANGE, {"change": "pause", "kind": "nope", "confirmed": "yes"}, follow=True)
    assert any("No job kind" in str(m) for m in response.context["messages"])
    assert not QueueControl.objects.exists()


def test_staff_without_permission_cannot_see_or_steer_the_queues(db):
    clerk = make_user("clerk")
    clerk.is_staff = True
    clerk.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(clerk)
    assert client.get(QUEUES).status_code == 403
    assert client.post(CHANGE, {"change": "pause", "kind": "media.probe", "confirmed": "yes"}).status_code == 403
    assert not QueueControl.objects.exists()


def test_the_change_form_only_takes_posts(staff_client):
    assert staff_client.get(CHANGE).status_code == 405
