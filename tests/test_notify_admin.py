"""The admin's notification pages: endpoints, deliveries with their attempts, and a job's notifications."""

import pytest
from django.urls import reverse

from offload import jobs
from offload.alerts import endpoints
from offload.alerts.models import Delivery, Endpoint, Outcome
from offload.models import JobPriority
from tests.support.browser import chromium, log_in, screenshot
from tests.support.jobrunner import drain, run_next
from tests.support.receivers import http_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _receivers_on_loopback(settings):
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True


def delivered_to(user, url: str, answer: bytes = b"ok", statuses=(200,)) -> tuple[Endpoint, Delivery]:
    """A webhook of the user's and one finished job delivered to a receiver answering `answer`."""
    with http_receiver(answer=answer, statuses=list(statuses)) as receiver:
        endpoint, _ = endpoints.create_endpoint(
            user, {"agent": "webhook", "name": "my script", "url": receiver.url + url, "events": ["job.succeeded"]}
        )
        jobs.enqueue("system.noop", user=user, priority=JobPriority.PERSON)
        drain()
        while run_next("notify"):
            pass
    return endpoint, endpoint.deliveries.get()


def test_adding_a_webhook_in_the_admin_shows_its_secret_once(admin_client, staff):
    page = admin_client.post(
        reverse("admin:alerts_endpoint_add"),
        {"name": "ops script", "agent": "webhook", "url": "http://127.0.0.1:9/hook", "to": "", "events": ["job.failed"],
         "kinds": "[]", "libraries": "[]", "options": "{}", "token": "",
         "deliveries-TOTAL_FORMS": "0", "deliveries-INITIAL_FORMS": "0"},
        follow=True,
    )  # fmt: skip
    endpoint = Endpoint.objects.get(owner=staff)
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in page.content.decode()
    again = admin_client.get(reverse("admin:alerts_endpoint_change", args=[endpoint.pk])).content.decode()
    assert endpoint.secret not in again and "••••••••" in again


def test_an_email_endpoints_smtp_password_set_in_the_admin_is_stored_and_never_shown(admin_client, staff):
    options = '{"smtp_host": "smtp.example.com", "smtp_port": 587, "smtp_username": "ops", "smtp_tls": "starttls"}'
    admin_client.post(
        reverse("admin:alerts_endpoint_add"),
        {"name": "ops mail", "agent": "email", "url": "", "to": "ops@example.com", "events": ["job.failed"],
         "kinds": "[]", "libraries": "[]", "options": options, "token": "smtp-Pass-123",
         "deliveries-TOTAL_FORMS": "0", "deliveries-INITIAL_FORMS": "0"},
        follow=True,
    )  # fmt: skip
    endpoint = Endpoint.objects.get(owner=staff)
    assert endpoint.secret == "smtp-Pass-123" and endpoint.options["smtp_host"] == "smtp.example.com"
    page = admin_client.get(reverse("admin:alerts_endpoint_change", args=[endpoint.pk])).content.decode()
    assert "smtp-Pass-123" not in page and "••••••••" in page


def test_the_admin_refuses_a_metadata_address(admin_client, staff):
    page = admin_client.post(
        reverse("admin:alerts_endpoint_add"),
        {"name": "x", "agent": "webhook", "url": "http://169.254.169.254/", "events": ["job.failed"],
         "kinds": "[]", "libraries": "[]", "options": "{}",
         "deliveries-TOTAL_FORMS": "0", "deliveries-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert page.status_code == 200 and "link-local" in page.content.decode()
    assert not Endpoint.objects.exists()


def test_an_answer_is_shown_as_text_never_as_html(admin_client, staff):
    _, row = delivered_to(staff, "/hook", answer=b"<script>alert('x')</script><b>bold</b>")
    page = admin_client.get(reverse("admin:alerts_delivery_change", args=[row.pk])).content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<script>alert" not in page


def test_a_dead_delivery_has_a_redeliver_button_that_queues_it_again(admin_client, staff):
    _, row = delivered_to(staff, "/hook", statuses=(410,))
    assert row.outcome == Outcome.DEAD
    url = reverse("admin:alerts_delivery_change", args=[row.pk])
    assert 'name="_redeliver"' in admin_client.get(url).content.decode()
    admin_client.post(url, {"_redeliver": "1"})
    row.refresh_from_db()
    assert row.outcome == Outcome.PENDING and row.attempt == 0


def test_the_jobs_page_and_the_endpoint_list_show_the_deliveries(admin_client, staff):
    _, row = delivered_to(staff, "/hook")
    job_page = admin_client.get(reverse("admin:offload_job_change", args=[row.job_id])).content.decode()
    assert "Notifications" in job_page and row.webhook_id[:12] in job_page
    listing = admin_client.get(reverse("admin:alerts_endpoint_changelist")).content.decode()
    assert "my script" in listing and "active" in listing
    deliveries = admin_client.get(reverse("admin:alerts_delivery_changelist")).content.decode()
    assert "job.succeeded" in deliveries and "sent" in deliveries


def test_an_operator_sees_only_their_own_endpoints_unless_superuser(client, alice, staff):
    endpoints.create_endpoint(
        alice, {"agent": "webhook", "name": "alices", "url": "http://127.0.0.1:9/", "events": ["job.failed"]}
    )
    operator = type(staff).objects.create_user("operator", password="operator-password", is_staff=True)
    from django.contrib.auth.models import Permission

    operator.user_permissions.set(Permission.objects.filter(content_type__app_label="alerts"))
    client.force_login(operator)
    page = client.get(reverse("admin:alerts_endpoint_changelist")).content.decode()
    assert "alices" not in page


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_screenshots_of_the_notification_pages(asgi_server, staff):
    endpoint, row = delivered_to(staff, "/hook", answer=b'{"error": "<b>nope</b>"}', statuses=(500,))
    endpoints.create_endpoint(
        staff, {"agent": "ntfy", "name": "phone", "url": "http://127.0.0.1:9/films", "events": ["scan.finished"]}
    )
    server = asgi_server()
    browser = chromium()
    try:
        log_in(browser, server.url, "staff", "staff-password", "/admin/alerts/endpoint/")
        assert "my script" in browser.page_source
        screenshot(browser, "notify-endpoints")
        browser.get(f"{server.url}/admin/alerts/delivery/{row.pk}/change/")
        assert "Redeliver" in browser.page_source or row.outcome == Outcome.FAILED
        screenshot(browser, "notify-delivery")
        browser.get(f"{server.url}/admin/offload/job/{row.job_id}/change/")
        screenshot(browser, "notify-job-page")
        browser.get(f"{server.url}/admin/alerts/endpoint/{endpoint.pk}/change/")
        screenshot(browser, "notify-endpoint")
        browser.get(f"{server.url}/admin/alerts/delivery/")
        screenshot(browser, "notify-deliveries")
    finally:
        browser.quit()


def test_send_a_test_from_the_endpoints_page_queues_one_test_delivery(admin_client, staff):
    endpoint, _ = endpoints.create_endpoint(
        staff, {"agent": "webhook", "name": "s", "url": "http://127.0.0.1:9/", "events": ["job.failed"]}
    )
    url = reverse("admin:alerts_endpoint_change", args=[endpoint.pk])
    assert 'name="_send_test"' in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"_send_test": "1"}).status_code == 302
    assert list(endpoint.deliveries.values_list("event", "outcome")) == [("test", "pending")]


def test_an_operator_sees_on_a_jobs_page_only_what_their_own_endpoints_were_sent(client, alice, staff):
    from django.contrib.auth.models import Permission

    operator = type(staff).objects.create_user("operator", password="operator-password", is_staff=True)
    operator.user_permissions.set(Permission.objects.filter(codename__in=["view_job", "view_delivery"]))
    _, row = delivered_to(staff, "/staffs-hook")
    client.force_login(operator)
    page = client.get(reverse("admin:offload_job_change", args=[row.job_id])).content.decode()
    assert row.webhook_id[:12] not in page
