"""Notifications to people's endpoints: the outbox, the notify lane, retries, and each agent's request.

Every receiver is a real local server (tests/support/receivers.py); every webhook is checked
with the `standardwebhooks` verifier, as a receiver would. Retries are checked by moving time
(an attempt is run at the moment it is due), never by sleeping.
"""

import threading
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

from offload import jobs
from offload.alerts import delivery, endpoints
from offload.alerts.models import Delivery, Endpoint, Outcome
from offload.models import JobPriority, Library, MediaItem
from tests.support.cluster import QCluster
from tests.support.jobrunner import drain, run_next
from tests.support.media import make_video
from tests.support.receivers import http_receiver, smtp_server

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _receivers_on_loopback(settings):
    # The receivers listen on 127.0.0.1, which endpoints may call only when private addresses are allowed.
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True


def webhook_for(user, url: str, **fields) -> tuple[Endpoint, str]:
    return endpoints.create_endpoint(
        user, {"agent": "webhook", "name": "script", "url": url, "events": ["job.succeeded", "job.failed"], **fields}
    )


def finish_noop(user) -> jobs.JobKind:
    job, _ = jobs.enqueue("system.noop", user=user, priority=JobPriority.PERSON)
    drain()
    return job


def fail_job(kind: str, user, target=None):
    job, _ = jobs.enqueue(kind, user=user, target=target, priority=JobPriority.PERSON)
    claimed = jobs.claim(job.pk)
    jobs.fail(claimed, "The file is not media.")
    return claimed


def run_notify_lane() -> int:
    ran = 0
    while run_next("notify"):
        ran += 1
    return ran


def verified(secret: str, request) -> dict:
    """The body, once the Standard Webhooks verifier accepts its signature (it raises otherwise)."""
    return Webhook(secret).verify(request.body, request.headers)


def test_a_finished_job_reaches_alices_webhook_signed_as_standard_webhooks_say(alice):
    with http_receiver() as receiver:
        endpoint, secret = webhook_for(alice, receiver.url + "/hook")
        job = finish_noop(alice)
        assert run_notify_lane() == 1

    assert secret.startswith("whsec_")
    (request,) = receiver.received
    body = verified(secret, request)
    assert body["type"] == "job.succeeded"
    assert body["data"]["job"]["id"] == job.pk
    assert body["data"]["job"]["status"] == "succeeded"
    assert request.headers["webhook-id"].startswith("msg_")
    row = Delivery.objects.get(endpoint=endpoint)
    assert (row.outcome, row.status_code, row.attempt, row.job_id) == (Outcome.SENT, 200, 1, job.pk)
    attempt = row.attempts.get()
    assert attempt.status_code == 200 and attempt.response == '{"ok": true}' and attempt.latency_ms is not None


def test_the_delivery_row_commits_with_the_finish_and_a_rollback_writes_none(alice):
    endpoint, _ = webhook_for(alice, "http://127.0.0.1:9/hook")
    job, _ = jobs.enqueue("system.noop", user=alice, priority=JobPriority.PERSON)
    claimed = jobs.claim(job.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        jobs.succeed(claimed, {})
        assert Delivery.objects.filter(endpoint=endpoint).count() == 1
        raise RuntimeError("the finish is rolled back")
    assert not Delivery.objects.filter(endpoint=endpoint).exists()
    jobs.succeed(claimed, {})
    row = Delivery.objects.get(endpoint=endpoint)
    assert row.outcome == Outcome.PENDING and row.job_id == job.pk


def test_a_failed_job_notifies_job_failed_and_bob_hears_nothing_of_alices_jobs(alice, bob, staff, library_root):
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mkv", title="Alien")
    with http_receiver() as receiver:
        alices, _ = webhook_for(alice, receiver.url)
        bobs, _ = webhook_for(bob, receiver.url)
        staffs, _ = webhook_for(staff, receiver.url)
        fail_job("media.probe", alice, item)
        run_notify_lane()
    assert not bobs.deliveries.exists()
    assert alices.deliveries.get().event == staffs.deliveries.get().event == "job.failed"
    body = receiver.received[0].json()
    assert body["data"]["job"]["error"] == "The file is not media."
    assert body["data"]["target"] == {"type": "media", "id": item.pk, "name": "Alien"}


def test_kinds_and_libraries_narrow_what_an_endpoint_hears(alice, library_root):
    films = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=films, relative_path="a.mkv")
    only_transcodes, _ = webhook_for(alice, "http://127.0.0.1:9/", kinds=["media.transcode"])
    only_films, _ = webhook_for(alice, "http://127.0.0.1:9/", libraries=[films.pk])
    fail_job("media.probe", alice, item)
    finish_noop(alice)
    assert not only_transcodes.deliveries.exists()
    assert list(only_films.deliveries.values_list("event", "target")) == [("job.failed", f"media:{item.pk}")]


def test_a_receiver_failing_three_times_gets_it_on_the_fourth_attempt_on_the_schedule(alice):
    with http_receiver(statuses=[500, 500, 500, 200]) as receiver:
        endpoint, secret = webhook_for(alice, receiver.url)
        finish_noop(alice)
        run_notify_lane()
        row = endpoint.deliveries.get()
        for expected_delay in (60, 300, 900):
            row.refresh_from_db()
            assert row.outcome == Outcome.FAILED
            last = row.attempts.first().at
            waited = (row.next_attempt_at - last).total_seconds()
            assert expected_delay * 0.9 <= waited <= expected_delay * 1.1
            # A moment before it is due nothing is sent; when it is due, the attempt runs.
            assert delivery.attempt(row.pk, now=row.next_attempt_at - timedelta(seconds=1)) == "skipped"
            delivery.attempt(row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    assert (row.outcome, row.attempt, row.status_code) == (Outcome.SENT, 4, 200)
    assert [a.status_code for a in row.attempts.order_by("number")] == [500, 500, 500, 200]
    # The same webhook-id on every attempt, each signature valid.
    assert {r.headers["webhook-id"] for r in receiver.received} == {row.webhook_id}
    assert all(verified(secret, r)["type"] == "job.succeeded" for r in receiver.received)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_after_the_last_retry_the_delivery_is_dead_and_redeliver_sends_it_again(alice):
    with http_receiver(statuses=[503] * 6 + [200]) as receiver:
        endpoint, _ = webhook_for(alice, receiver.url)
        finish_noop(alice)
        run_notify_lane()
        row = endpoint.deliveries.get()
        waited = []
        for _ in range(5):
            row.refresh_from_db()
            waited.append((row.next_attempt_at - row.attempts.first().at).total_seconds())
            delivery.attempt(row.pk, now=row.next_attempt_at)
        row.refresh_from_db()
        assert (row.outcome, row.attempt, row.next_attempt_at) == (Outcome.DEAD, 6, None)
        # 1 min, 5 min, 15 min, 1 h, 4 h, each with up to 10% jitter.
        for seconds, planned in zip(waited, (60, 300, 900, 3600, 14400), strict=True):
            assert planned * 0.9 <= seconds <= planned * 1.1
        endpoints.redeliver(row)
        run_notify_lane()
    row.refresh_from_db()
    assert row.outcome == Outcome.SENT
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_410_gone_disables_the_endpoint(alice):
    with http_receiver(statuses=[410]) as receiver:
        endpoint, _ = webhook_for(alice, receiver.url)
        finish_noop(alice)
        run_notify_lane()
        finish_noop(alice)
        run_notify_lane()
    endpoint.refresh_from_db()
    assert endpoint.paused and "410" in endpoint.paused_reason
    assert endpoint.deliveries.get().outcome == Outcome.DEAD
    assert len(receiver.received) == 1


def test_an_endpoint_failing_for_a_day_is_paused_and_its_owner_told_by_email(alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    with smtp_server() as (port, mailbox), http_receiver(statuses=[500]) as receiver:
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        endpoint, _ = webhook_for(alice, receiver.url)
        endpoints.create_endpoint(
            alice, {"agent": "email", "name": "me", "to": "alice@example.com", "events": ["job.failed"]}
        )
        finish_noop(alice)
        run_notify_lane()
        row = endpoint.deliveries.get()
        row.refresh_from_db()
        # The next attempt, run as if a day had passed with nothing answering.
        delivery.attempt(row.pk, now=timezone.now() + timedelta(hours=25))
        endpoint.refresh_from_db()
        assert endpoint.paused and "24 hours" in endpoint.paused_reason
        run_notify_lane()
    (mail,) = mailbox.messages
    assert "paused" in mail["Subject"] and "script" in mail["Subject"]


def test_a_private_address_is_refused_at_delivery_and_a_metadata_address_always(alice, settings):
    with http_receiver() as receiver:
        endpoint, _ = webhook_for(alice, receiver.url)
        settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = False
        finish_noop(alice)
        run_notify_lane()
    row = endpoint.deliveries.get()
    assert row.outcome == Outcome.DEAD and "private" in row.error
    assert receiver.received == []
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "ftp://127.0.0.1/x"):
        with pytest.raises(ValueError):
            webhook_for(alice, url)


def test_a_redirect_is_not_followed(alice):
    with http_receiver() as target, http_receiver(statuses=[302], headers={}) as receiver:
        receiver.headers["Location"] = target.url
        endpoint, _ = webhook_for(alice, receiver.url)
        finish_noop(alice)
        run_notify_lane()
    row = endpoint.deliveries.get()
    assert row.outcome == Outcome.FAILED and row.status_code == 302 and "redirect" in row.error
    assert target.received == []


def test_ntfy_gets_a_json_publish_with_title_tags_priority_and_a_click_link(alice):
    with http_receiver() as receiver:
        endpoints.create_endpoint(
            alice,
            {"agent": "ntfy", "name": "phone", "url": receiver.url + "/offload-alerts", "events": ["job.failed"],
             "secret": "tk_abc", "options": {"priority": 5, "tags": ["tv"]}},
        )  # fmt: skip
        job = fail_job("system.noop", alice)
        run_notify_lane()
    (request,) = receiver.received
    # ntfy's documented JSON publishing: POST to the server's root with the topic in the body.
    assert request.path == "/" and request.headers["authorization"] == "Bearer tk_abc"
    body = request.json()
    assert body["topic"] == "offload-alerts" and body["priority"] == 5
    assert body["tags"] == ["tv", "x"]
    assert body["title"] == "system.noop failed" and body["message"] == "The file is not media."
    assert body["click"].endswith(f"/admin/offload/job/{job.pk}/change/")


def test_gotify_gets_a_message_with_its_app_token(alice):
    with http_receiver() as receiver:
        endpoints.create_endpoint(
            alice,
            {
                "agent": "gotify",
                "name": "gotify",
                "url": receiver.url + "/",
                "events": ["job.succeeded"],
                "secret": "AppTok",
            },
        )
        job = finish_noop(alice)
        run_notify_lane()
    (request,) = receiver.received
    # Gotify's documented API: POST /message, the application token in X-Gotify-Key.
    assert request.path == "/message" and request.headers["x-gotify-key"] == "AppTok"
    body = request.json()
    assert body["title"] == "system.noop succeeded" and isinstance(body["priority"], int)
    assert body["extras"]["client::notification"]["click"]["url"].endswith(f"/job/{job.pk}/change/")


def test_discord_gets_an_embed_with_the_kind_the_item_the_outcome_and_a_link(alice, library_root):
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="b.mkv", title="Brazil @everyone")
    with http_receiver(statuses=[204], answer=b"") as receiver:
        endpoints.create_endpoint(
            alice,
            {"agent": "discord", "name": "ops", "url": receiver.url + "/api/webhooks/1/x", "events": ["job.failed"]},
        )
        job = fail_job("media.probe", alice, item)
        run_notify_lane()
    (request,) = receiver.received
    assert request.path == "/api/webhooks/1/x"
    body = request.json()
    (embed,) = body["embeds"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields == {"Kind": "media.probe", "Item": "Brazil @everyone", "Outcome": "failed"}
    assert embed["url"].endswith(f"/job/{job.pk}/change/") and len(embed["title"]) <= 256
    assert body["allowed_mentions"] == {"parse": []}
    assert Delivery.objects.get().outcome == Outcome.SENT


def test_email_goes_through_a_real_smtp_server_as_text_and_html(alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    with smtp_server() as (port, mailbox):
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        endpoints.create_endpoint(
            alice, {"agent": "email", "name": "me", "to": "alice@example.com", "events": ["job.failed"]}
        )
        job, _ = jobs.enqueue("system.noop", user=alice, priority=JobPriority.PERSON)
        jobs.fail(jobs.claim(job.pk), "<script>alert(1)</script>")
        run_notify_lane()
    (mail,) = mailbox.messages
    assert mailbox.envelopes[0][1] == ["alice@example.com"]
    assert mail["Subject"] == "system.noop failed"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in mail.walk()
        if not part.is_multipart()
    }
    assert "<script>alert(1)</script>" in parts["text/plain"]
    assert "&lt;script&gt;" in parts["text/html"] and "<script>" not in parts["text/html"]
    assert f"/admin/offload/job/{job.pk}/change/" in parts["text/html"]


def test_the_same_target_within_five_minutes_collapses_into_one(alice, library_root):
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mkv")
    endpoint, _ = webhook_for(alice, "http://127.0.0.1:9/")
    fail_job("media.probe", alice, item)
    fail_job("media.probe", alice, item)
    finish_noop(alice)
    outcomes = list(endpoint.deliveries.order_by("id").values_list("event", "outcome"))
    assert outcomes == [("job.failed", "pending"), ("job.failed", "deduped"), ("job.succeeded", "pending")]


def test_pushes_past_the_hourly_limit_are_recorded_as_limited_not_sent(alice, settings):
    settings.OFFLOAD_NOTIFY_PUSHES_PER_HOUR = 2
    with http_receiver() as receiver:
        endpoint, _ = endpoints.create_endpoint(
            alice, {"agent": "ntfy", "name": "phone", "url": receiver.url + "/t", "events": ["job.succeeded"]}
        )
        for _ in range(3):
            finish_noop(alice)
        run_notify_lane()
    assert sorted(endpoint.deliveries.values_list("outcome", flat=True)) == ["limited", "sent", "sent"]
    assert len(receiver.received) == 2


def test_a_scan_notifies_once_with_its_counts_and_its_items_jobs_never_do(alice, library_root):
    make_video(library_root / "one.mp4")
    make_video(library_root / "two.mp4")
    library = Library.objects.create(name="Films", path=str(library_root), owner=alice)
    endpoint, _ = webhook_for(alice, "http://127.0.0.1:9/", events=["job.succeeded", "job.failed", "scan.finished"])
    jobs.enqueue("library.scan", target=library, user=alice, priority=JobPriority.PERSON)
    drain()
    (row,) = endpoint.deliveries.all()
    assert row.event == "scan.finished"
    data = row.payload["data"]
    assert data["counts"] == {"added": 2, "changed": 0, "removed": 0, "failed": 0}
    assert data["library"] == {"id": library.pk, "name": "Films"}
    assert data["job"]["kind"] == "library.scan"


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_is_delivered_again_with_the_same_webhook_id(alice, tmp_path):
    """A real notify-lane cluster is SIGKILLed while the receiver holds its request; the next attempt sends."""
    held, release = threading.Event(), threading.Event()

    def hold_the_first(request) -> None:
        if not held.is_set():
            held.set()
            release.wait(30)

    with http_receiver(on_request=hold_the_first) as receiver:
        endpoint, secret = webhook_for(alice, receiver.url)
        lane = QCluster(tmp_path / "notify.log", Q_CLUSTER_NAME="notify", OFFLOAD_NOTIFY_ALLOW_PRIVATE="1").start()
        try:
            finish_noop(alice)
            assert held.wait(60), lane.log()
            lane.kill()
        finally:
            release.set()
            lane.stop()
        row = endpoint.deliveries.get()
        assert row.outcome == Outcome.PENDING and row.leased_until is not None
        # The lease of the dead worker's attempt expires; the sweep queues it, the lane sends it.
        later = row.leased_until + timedelta(seconds=1)
        assert delivery.sweep(now=later + delivery.SWEEP_GRACE) == 1
        delivery.attempt(row.pk, now=later)
    row.refresh_from_db()
    assert row.outcome == Outcome.SENT and row.attempt == 2
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == row.webhook_id
    assert verified(secret, second)["type"] == "job.succeeded"


def notifications_counted(client) -> dict[tuple[str, str], float]:
    text = client.get("/metrics").content.decode()
    return {
        (sample.labels["agent"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "offload_notifications_total"
    }


def test_outcomes_are_counted_by_agent_and_a_failing_endpoint_is_measured(alice, client):
    before = notifications_counted(client)
    with http_receiver(statuses=[200, 500]) as receiver:
        endpoint, _ = webhook_for(alice, receiver.url)
        finish_noop(alice)
        finish_noop(alice)
        run_notify_lane()
    after = notifications_counted(client)
    assert after[("webhook", "sent")] - before.get(("webhook", "sent"), 0) == 1
    assert after[("webhook", "failed")] - before.get(("webhook", "failed"), 0) == 1
    assert after[("email", "dead")] == before.get(("email", "dead"), 0)
    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=2))
    text = client.get("/metrics").content.decode()
    failing = next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "offload_notification_endpoint_failing_seconds" and s.labels["agent"] == "webhook"
    )
    assert 7000 < failing < 7300


def test_deliveries_go_with_their_job_and_tests_after_the_jobs_retention(alice, settings):
    from offload.jobs.retention import prune_jobs

    endpoint, _ = webhook_for(alice, "http://127.0.0.1:9/")
    job = finish_noop(alice)
    endpoints.send_test(endpoint)
    later = timezone.now() + timedelta(days=settings.OFFLOAD_JOB_RETENTION_DAYS + 1)
    assert prune_jobs(now=later) >= 1
    assert not Delivery.objects.filter(job_id=job.pk).exists()
    assert delivery.prune(now=later) == 1
    assert not Delivery.objects.exists()


def test_the_sweep_requeues_a_lost_task_but_not_one_waiting_in_a_busy_lane(alice):
    endpoint, _ = webhook_for(alice, "http://127.0.0.1:9/")
    finish_noop(alice)
    row = endpoint.deliveries.get()
    soon = timezone.now() + timedelta(minutes=2)
    # Queued two minutes ago and still waiting its turn: its task exists, no copy is added.
    assert delivery.sweep(now=soon) == 0
    # Ten minutes on and never attempted: the task is taken as lost, queued once more, then left alone.
    later = timezone.now() + timedelta(minutes=11)
    assert delivery.sweep(now=later) == 1
    assert delivery.sweep(now=later + timedelta(minutes=1)) == 0
    row.refresh_from_db()
    assert row.queued_at == later


def test_a_rotated_out_secret_stops_signing_after_24_hours(alice):
    from offload.alerts.agents import webhook

    endpoint, old = webhook_for(alice, "http://127.0.0.1:9/")
    new = endpoints.rotate_secret(endpoint)
    now = timezone.now()
    assert webhook.signing_secrets(endpoint, now + timedelta(hours=23)) == [new, old]
    assert webhook.signing_secrets(endpoint, now + timedelta(hours=25)) == [new]


def test_a_deactivated_user_is_told_nothing(alice):
    endpoint, _ = webhook_for(alice, "http://127.0.0.1:9/")
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    finish_noop(alice)
    assert not endpoint.deliveries.exists()
