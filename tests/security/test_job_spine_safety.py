"""The job spine: lost queue rows are queued again, and each attempt has its own partial folder."""

from offload import jobs
from offload.models import Job


def test_a_queued_job_whose_queue_row_was_deleted_is_queued_again_by_the_reaper(alice, settings):
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import OrmQ

    from offload.jobs import reaper
    from tests.support.jobrunner import drain

    job, _ = jobs.enqueue("system.noop", user=alice)
    fresh, _ = jobs.enqueue("system.noop", params={"n": 2}, user=alice)
    OrmQ.objects.all().delete()  # as the django-q admin allows
    Job.objects.filter(pk=job.pk).update(
        queued_at=timezone.now() - timedelta(seconds=settings.OFFLOAD_JOB_STALE_SECONDS + 1)
    )
    # Only the job that has waited past the stale window counts as lost.
    assert reaper.reap_stale_jobs() == 1
    assert reaper.reap_stale_jobs() == 0  # its new row is there now
    drain()
    job.refresh_from_db()
    fresh.refresh_from_db()
    assert job.status == "succeeded"
    assert fresh.status == "queued"


def test_each_attempt_works_in_its_own_partial_folder_and_cleans_only_its_own(alice, hostile_item, settings):
    from offload.lib import outputs

    job, _ = jobs.enqueue("media.thumbnail", target=hostile_item, user=alice)
    first = jobs.claim(job.pk)
    first_dir = outputs.fresh_partial_dir(first)
    (first_dir / "poster.jpg").write_bytes(b"first attempt")
    # The first attempt's heartbeat went stale while it still ran: a second attempt takes over.
    second = Job.objects.get(pk=job.pk)
    second.attempts = first.attempts + 1
    second_dir = outputs.fresh_partial_dir(second)
    (second_dir / "poster.jpg").write_bytes(b"second attempt")
    assert first_dir != second_dir
    # The older attempt's leftovers went when the newer one started; its cleanup spares the newer one.
    assert not first_dir.exists()
    outputs.remove_partial_dir(first)
    assert (second_dir / "poster.jpg").read_bytes() == b"second attempt"
    # An older attempt that starts late does not remove a newer attempt's folder either.
    outputs.fresh_partial_dir(first)
    assert (second_dir / "poster.jpg").exists()
    outputs.remove_partial_dir(first)
    outputs.remove_partial_dir(second)
    assert not (settings.MEDIA_ROOT / ".partial" / f"job-{job.pk}").exists()
