"""Found by probing from outside: bad input answers 4xx, and races between requests and workers stay consistent."""

import pytest

from offload import jobs
from offload.models import Job
from tests.support.hostile import SCRIPT


@pytest.mark.parametrize("library", ["9223372036854775808", "%C2%B2", "-1", "1e3", "12345678901234567890"])
def test_a_library_filter_that_is_no_id_answers_400_json_not_500(alice_api, hostile_item, library):
    response = alice_api.get(f"/api/v1/media/?library={library}")
    assert response.status_code == 400
    assert "library" in response.json()


def test_a_deeply_nested_json_body_answers_400_json_and_changes_nothing(alice_api, hostile_item):
    body = "[" * 1100 + "]" * 1100
    response = alice_api.patch(f"/api/v1/media/{hostile_item.pk}/", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
    hostile_item.refresh_from_db()
    assert hostile_item.title == SCRIPT


def test_two_long_idempotency_keys_that_share_their_first_255_characters_make_two_jobs(alice_api, hostile_item):
    prefix = "k" * 255
    first = alice_api.post(f"/api/v1/media/{hostile_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY=prefix + "A")
    assert first.status_code == 202
    jobs.cancel(Job.objects.get(pk=first.json()["id"]), None)
    second = alice_api.post(f"/api/v1/media/{hostile_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY=prefix + "B")
    assert second.status_code == 202
    assert second.json()["id"] != first.json()["id"]
    # The same long key again answers its own job.
    again = alice_api.post(f"/api/v1/media/{hostile_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY=prefix + "B")
    assert (again.status_code, again.json()["id"]) == (200, second.json()["id"])


def test_an_absurdly_long_idempotency_key_answers_400_json(alice_api, hostile_item):
    response = alice_api.post(f"/api/v1/media/{hostile_item.pk}/probe/", HTTP_IDEMPOTENCY_KEY="k" * 5000)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_retried_job_is_not_cancelled_again_by_the_last_attempts_cancel_flag(
    alice, hostile_item, django_capture_on_commit_callbacks
):
    from offload.jobs.runner import JobRun

    job, _ = jobs.enqueue("media.transcode", target=hostile_item, params={"profile": "h264-480p"}, user=alice)
    job = jobs.claim(job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.cancel(job, alice)  # running: the flag goes up in Redis for its worker
    assert jobs.cancel_flagged(job.pk)
    assert jobs.mark_cancelled(job)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.retry(Job.objects.get(pk=job.pk), alice)
    assert not jobs.cancel_flagged(job.pk)
    again = jobs.claim(job.pk)
    assert again is not None
    assert JobRun(again).should_stop() is False


def test_a_stale_cancel_flag_alone_does_not_stop_a_running_job(alice, hostile_item):
    # Redis could not clear the flag at the retry: the runner believes the job's row.
    from offload.jobs.runner import JobRun
    from offload.lib.redis_state import key, state_redis

    job, _ = jobs.enqueue("media.probe", target=hostile_item, user=alice)
    job = jobs.claim(job.pk)
    state_redis().set(key("cancel", job.pk), 1, ex=60)
    assert JobRun(job).should_stop() is False


def test_a_duplicate_that_finishes_between_the_failed_insert_and_the_lookup_is_not_a_500(
    alice, hostile_item, monkeypatch
):
    from offload.jobs import transitions

    twin, _ = jobs.enqueue("media.probe", target=hostile_item, user=alice)
    real_twin = transitions.active_twin
    calls = []

    def twin_finishes_meanwhile(*request):
        calls.append(request)
        if len(calls) == 1:
            # The active twin finishes just after our insert collided with it.
            Job.objects.filter(pk=twin.pk).update(status="succeeded")
            return None
        return real_twin(*request)

    monkeypatch.setattr(transitions, "active_twin", twin_finishes_meanwhile)
    job, created = jobs.enqueue("media.probe", target=hostile_item, user=alice)
    assert created and job.pk != twin.pk
