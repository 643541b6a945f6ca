"""A kind is registered in one place, and the API, the admin and the rate limit pick it up."""

import importlib

import pytest
from django.test import Client
from django.urls import clear_url_caches

from offload.jobs import STAFF, JobKind
from offload.models import Job, JobStatus, Library, MediaItem
from tests.support.jobrunner import drain
from tests.support.kinds_for_tests import registered


def run_checksum(job, item, run):
    return {"sha256": "0" * 64, "item": job.target_id}


CHECKSUM = JobKind(
    "media.checksum", run_checksum, target_type="media", action="checksum", label="Compute checksum", timeout=60
)
PURGE = JobKind("media.purge", run_checksum, target_type="media", action="purge", label="Purge", requested_by=STAFF)


def reload_urls() -> None:
    """The API builds a route per registered kind when its URLconf loads: load it again."""
    import config.urls
    import offload.api.urls

    importlib.reload(offload.api.urls)
    importlib.reload(config.urls)
    clear_url_caches()


@pytest.fixture
def new_kinds():
    with registered(CHECKSUM, PURGE):
        reload_urls()
        yield
    reload_urls()


@pytest.fixture
def item(alice, library_root):
    library = Library.objects.create(name="A", path=str(library_root), owner=alice)
    return MediaItem.objects.create(library=library, relative_path="a.mp4")


def test_a_registered_kind_is_requested_through_the_api_and_run_by_the_worker(new_kinds, alice_api, item):
    response = alice_api.post(f"/api/v1/media/{item.pk}/checksum/")
    assert response.status_code == 202
    assert response.json()["kind"] == "media.checksum"
    assert response["Location"] == response.json()["url"]
    assert alice_api.post(f"/api/v1/media/{item.pk}/checksum/").status_code == 200  # the active one
    drain()
    job = Job.objects.get(kind="media.checksum")
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, {"sha256": "0" * 64, "item": item.pk})


def test_bob_cannot_ask_for_a_kind_on_alices_item(new_kinds, bob_api, item):
    assert bob_api.post(f"/api/v1/media/{item.pk}/checksum/").status_code == 404
    assert not Job.objects.exists()


def test_a_staff_only_kind_refuses_others_and_serves_staff(new_kinds, alice_api, staff_api, item):
    assert alice_api.post(f"/api/v1/media/{item.pk}/purge/").status_code == 403
    assert staff_api.post(f"/api/v1/media/{item.pk}/purge/").status_code == 202


def test_the_schema_documents_the_new_action(new_kinds, anon_api):
    paths = anon_api.get("/api/v1/schema/?format=json").json()["paths"]
    assert "post" in paths["/api/v1/media/{id}/checksum/"]


def test_the_admin_offers_the_kind_as_an_action_on_its_targets(new_kinds, staff, alice, item):
    admin = Client()
    admin.force_login(staff)
    page = admin.get("/admin/offload/mediaitem/").content.decode()
    assert '<option value="checksum">Compute checksum</option>' in page
    assert '<option value="purge">Purge</option>' in page
    response = admin.post(
        "/admin/offload/mediaitem/", {"action": "checksum", "_selected_action": [item.pk]}, follow=True
    )
    assert "1 job queued." in response.content.decode()
    assert Job.objects.get(kind="media.checksum").requested_by == staff


def test_a_request_for_the_kind_counts_against_its_rate_limit_scope(new_kinds, alice_api, item, settings):
    settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, "jobs_user": "2/60", "api_user": "100/60"}
    codes = [alice_api.post(f"/api/v1/media/{item.pk}/checksum/").status_code for _ in range(3)]
    assert codes == [202, 200, 429]
    # Reads are not job requests: they still pass.
    assert alice_api.get(f"/api/v1/media/{item.pk}/").status_code == 200


def test_a_kind_without_an_action_has_no_route(alice_api, item):
    # media.probe has one; search.reindex (no target, no action) is queued only by code.
    assert alice_api.post(f"/api/v1/media/{item.pk}/reindex/").status_code == 404
