"""Joiners follow access: losing a library drops its jobs; a joiner leaves, never acts for everyone."""

import pytest

from offload import actions
from offload.models import Job, JobMember, JobStatus, Library, MediaItem
from offload.notifications import streams
from tests.support.people import api_client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def carol(db):
    return make_user("carol")


@pytest.fixture
def joined(alice, carol, library_root):
    """Alice's library with carol as a member; carol joined alice's transcode."""
    folder = library_root / "alices"
    folder.mkdir()
    library = Library.objects.create(name="Alice's", path=str(folder), owner=alice)
    library.members.add(carol)
    item = MediaItem.objects.create(library=library, relative_path="film.mkv", title="Film")
    job, created = actions.request_job(alice, "media.transcode", item, {"profile": "h264-480p"})
    assert created
    again, created = actions.request_job(carol, "media.transcode", item, {"profile": "h264-480p"})
    assert (again.pk, created) == (job.pk, False)
    return library, item, job


def test_a_member_removed_from_the_library_loses_the_jobs_she_joined_and_their_events(
    joined, carol, staff_api, django_capture_on_commit_callbacks
):
    library, item, job = joined
    before = streams.latest_seq(carol)
    carol_api = api_client_for(carol)
    assert carol_api.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_api.patch(f"/api/v1/libraries/{library.pk}/", {"members": []}, format="json").status_code == 200
    assert carol_api.get(f"/api/v1/media/{item.pk}/").status_code == 404
    assert carol_api.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert carol_api.get("/api/v1/jobs/").json()["results"] == []
    assert not JobMember.objects.filter(user=carol).exists()
    # The job's later events reach neither her replay nor her live stream.
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    actions.cancel_job(job.requested_by, Job.objects.get(pk=job.pk))
    assert streams.events_between(carol, before) == []


def test_a_member_removed_in_the_admin_loses_her_joins_too(joined, carol):
    library, _, job = joined
    library.members.remove(carol)
    assert not JobMember.objects.filter(user=carol, job=job).exists()


def test_a_joiner_cannot_retry_the_owners_job_after_it_is_cancelled(joined, alice, carol):
    _, _, job = joined
    assert api_client_for(alice).post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 200
    response = api_client_for(carol).post(f"/api/v1/jobs/{job.pk}/retry/")
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.attempts == 0


def test_a_joiners_cancel_only_withdraws_her(joined, carol):
    _, _, job = joined
    response = api_client_for(carol).post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 202 and response.json()["left"] is True
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_a_member_who_stays_keeps_her_join(joined, alice, carol):
    library, _, job = joined
    other = make_user("dave")
    library.members.add(other)
    library.members.remove(other)
    assert JobMember.objects.filter(user=carol, job=job).exists()
