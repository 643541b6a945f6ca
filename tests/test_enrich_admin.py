"""Enrichment in the admin: the enrich action, the provenance table, unlocking fields."""

import pytest
from django.contrib.messages import get_messages

from offload.models import Job, JobStatus, Library, MediaItem

pytestmark = pytest.mark.urls("tests.support.enrich_admin_urls")

CHANGELIST = "/admin/offload/mediaitem/"


@pytest.fixture
def items(alice, library_root):
    library = Library.objects.create(name="Lib", path=str(library_root), owner=alice)
    first = MediaItem.objects.create(
        library=library,
        relative_path="a.mkv",
        title="Mine",
        year=1999,
        locked_fields=["title"],
        provenance={"title": "user", "year": "filename"},
    )
    second = MediaItem.objects.create(library=library, relative_path="b.mkv", locked_fields=["title", "year"])
    return first, second


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def unlock_url(item: MediaItem, field: str) -> str:
    return f"{CHANGELIST}{item.pk}/unlock/{field}/"


def test_the_change_page_shows_who_set_each_field_and_unlock_buttons(staff_client, items):
    page = staff_client.get(f"{CHANGELIST}{items[0].pk}/change/").content.decode()
    assert "<tr><td>title</td><td>user</td><td>locked <button" in page
    assert f"formaction='{unlock_url(items[0], 'title')}'" in page
    assert "<tr><td>year</td><td>filename</td><td></td></tr>" in page
    assert "<tr><td>overview</td><td>—</td><td></td></tr>" in page
    assert "Last enriched: never" in page


def test_unlock_unlocks_the_field_and_queues_enrichment(staff_client, staff, items):
    response = staff_client.post(unlock_url(items[0], "title"))
    assert response.status_code == 302
    assert response["Location"] == f"{CHANGELIST}{items[0].pk}/change/"
    items[0].refresh_from_db()
    assert items[0].locked_fields == []
    assert items[0].title == "Mine"  # kept until enrichment sets it
    job = Job.objects.get(kind="media.enrich", target_id=items[0].pk)
    assert (job.status, job.requested_by) == (JobStatus.QUEUED, staff)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"Unlocked title; enrichment job {job.pk} queued."]


def test_unlock_answers_only_post(staff_client, items):
    assert staff_client.get(unlock_url(items[0], "title")).status_code == 405
    items[0].refresh_from_db()
    assert items[0].locked_fields == ["title"]


def test_unlock_of_a_field_that_is_not_descriptive_is_refused_readably(staff_client, items):
    response = staff_client.post(unlock_url(items[0], "status"))
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Not descriptive fields: status."]
    assert not Job.objects.exists()


def test_unlock_of_a_missing_item_is_404(staff_client, items):
    assert staff_client.post(f"{CHANGELIST}999999/unlock/title/").status_code == 404


def test_unlock_needs_a_staff_login(client, alice, items):
    client.force_login(alice)
    response = client.post(unlock_url(items[0], "title"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    items[0].refresh_from_db()
    assert items[0].locked_fields == ["title"]


def test_the_enrich_action_queues_a_job_per_item(staff_client, items):
    ids = [str(i.pk) for i in items]
    response = staff_client.post(CHANGELIST, {"action": "enrich", "_selected_action": ids}, follow=True)
    assert response.status_code == 200
    assert set(Job.objects.filter(kind="media.enrich").values_list("target_id", flat=True)) == {i.pk for i in items}
    assert "2 jobs queued." in response.content.decode()
    again = staff_client.post(CHANGELIST, {"action": "enrich", "_selected_action": ids}, follow=True)
    assert "0 jobs queued. 2 already active." in again.content.decode()


def test_the_unlock_all_action_unlocks_every_field_and_queues_enrichment(staff_client, items):
    ids = [str(i.pk) for i in items]
    staff_client.post(CHANGELIST, {"action": "unlock_all_fields", "_selected_action": ids})
    assert list(MediaItem.objects.values_list("locked_fields", flat=True)) == [[], []]
    assert Job.objects.filter(kind="media.enrich").count() == 2
