"""A media item's page has a button per job kind that targets media, with the kind's parameter form."""

import re

import pytest
from django.urls import reverse

from offload.models import Job, Library, MediaItem
from tests.support.people import staff_client_with

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/offload/mediaitem/"


@pytest.fixture
def item(alice, library_root):
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    return MediaItem.objects.create(library=library, relative_path="Long Feature.mkv", title="Long Feature")


def page_of(client, item) -> str:
    response = client.get(reverse("admin:offload_mediaitem_change", args=[item.pk]))
    assert response.status_code == 200
    return response.content.decode()


def press(client, item, action: str, **more):
    data = {"action": action, "_selected_action": [item.pk], "next": f"/admin/offload/mediaitem/{item.pk}/change/"}
    return client.post(CHANGELIST, {**data, **more})


def test_staff_see_a_button_for_each_kind_that_targets_media(admin_client, item):
    html = page_of(admin_client, item)
    tools = re.search(r'<ul class="object-tools">(.*?)</ul>', html, re.S).group(1)
    buttons = re.findall(r'<button type="submit" class="offload-button"[^>]*>([^<]+)</button>', tools)
    assert sorted(buttons) == sorted(["Probe", "Enrich metadata", "Make thumbnails", "Transcode…"])


def test_probe_queues_a_probe_of_this_item_and_comes_back_to_its_page(admin_client, item):
    response = press(admin_client, item, "probe")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/offload/mediaitem/{item.pk}/change/"
    job = Job.objects.get(kind="media.probe")
    assert (job.target_type, job.target_id) == ("media", item.pk)
    assert f"#{job.pk}" in admin_client.get(response["Location"]).content.decode()


def test_transcode_asks_for_its_profile_first_then_queues_it(admin_client, item):
    asked = press(admin_client, item, "transcode")
    assert asked.status_code == 200
    form = asked.content.decode()
    assert '<select name="profile" id="id_profile" required>' in form
    assert f'<input type="hidden" name="next" value="/admin/offload/mediaitem/{item.pk}/change/">' in form
    assert "This will queue a <strong>transcode</strong> job of <strong>Long Feature</strong>" in form
    assert not Job.objects.exists()
    done = press(admin_client, item, "transcode", confirm="yes", profile="h264-480p")
    assert done["Location"] == f"/admin/offload/mediaitem/{item.pk}/change/"
    job = Job.objects.get(kind="media.transcode")
    assert job.params == {"profile": "h264-480p"} and job.target_id == item.pk


def test_an_unknown_profile_is_refused_with_a_message_not_queued(admin_client, item):
    done = press(admin_client, item, "transcode", confirm="yes", profile="no-such-profile")
    assert done.status_code == 302
    assert not Job.objects.exists()


def test_a_next_address_on_another_site_is_not_followed(admin_client, item):
    response = admin_client.post(
        CHANGELIST, {"action": "probe", "_selected_action": [item.pk], "next": "https://evil.example/"}
    )
    assert response["Location"] != "https://evil.example/"


def test_staff_who_may_not_request_jobs_see_no_buttons_and_queue_nothing(item):
    client = staff_client_with("viewer", "view_mediaitem", "change_mediaitem")
    html = page_of(client, item)
    assert "Transcode…" not in html and ">Probe</button>" not in html
    press(client, item, "probe")
    assert not Job.objects.exists()
