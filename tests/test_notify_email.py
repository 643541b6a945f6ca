"""An email endpoint's own SMTP server: its host, port, login and TLS mode, its password a secret
never shown; without them the environment's EMAIL_HOST… settings apply (test_notify_delivery.py)."""

import socket

import pytest

from offload.alerts.models import Delivery, Endpoint, Outcome
from offload.checks import check_notify_ca_file
from tests.support.certs import self_signed
from tests.support.jobrunner import run_next
from tests.support.receivers import smtp_server

pytestmark = pytest.mark.django_db
ENDPOINTS = "/api/v1/notifications/endpoints/"


@pytest.fixture(autouse=True)
def _nowhere_by_default(settings):
    """The environment's SMTP server is a closed port: only an endpoint's own server can receive."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", probe.getsockname()[1]
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True


def make_email(api, port: int, password: str = "s3cret-Pass", **options):
    body = {
        "agent": "email",
        "name": "me",
        "to": "alice@example.com",
        "events": ["job.failed"],
        "smtp_password": password,
        "options": {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_username": "alice-mail", "smtp_tls": "none"}
        | options,
    }
    return api.post(ENDPOINTS, body, format="json")


def send_a_test(api, endpoint_id: int) -> Delivery:
    assert api.post(f"{ENDPOINTS}{endpoint_id}/test/").status_code == 202
    while run_next("notify"):
        pass
    return Delivery.objects.get(endpoint_id=endpoint_id)


def test_alices_email_endpoint_logs_in_to_its_own_smtp_server_and_delivers(alice_api):
    with smtp_server(login=("alice-mail", "s3cret-Pass")) as (port, mailbox):
        made = make_email(alice_api, port)
        assert made.status_code == 201
        assert "s3cret-Pass" not in made.content.decode() and made.json()["secret"] == "••••••••"
        assert "s3cret-Pass" not in alice_api.get(f"{ENDPOINTS}{made.json()['id']}/").content.decode()
        row = send_a_test(alice_api, made.json()["id"])
    assert row.outcome == Outcome.SENT
    assert mailbox.logins.tried == [("alice-mail", True)]
    (mail,) = mailbox.messages
    assert mailbox.envelopes[0][1] == ["alice@example.com"] and mail["X-Offload-Webhook-Id"] == row.webhook_id


def test_a_wrong_smtp_password_fails_the_delivery_with_a_readable_reason(alice_api):
    with smtp_server(login=("alice-mail", "s3cret-Pass")) as (port, mailbox):
        made = make_email(alice_api, port, password="wrong")
        row = send_a_test(alice_api, made.json()["id"])
    assert row.outcome == Outcome.FAILED and "refused the login" in row.error
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN).
    assert mailbox.messages == [] and mailbox.logins.tried and set(mailbox.logins.tried) == {("alice-mail", False)}


@pytest.fixture
def certificate(tmp_path):
    return self_signed(tmp_path / "smtp-tls")


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_alices_email_goes_over_tls_to_a_server_whose_ca_the_operator_trusts(alice_api, settings, certificate, tls):
    settings.OFFLOAD_NOTIFY_SMTP_CA_FILE = str(certificate.cert)
    with smtp_server(login=("alice-mail", "s3cret-Pass"), tls=tls, certificate=certificate) as (port, mailbox):
        made = make_email(alice_api, port, smtp_tls=tls)
        row = send_a_test(alice_api, made.json()["id"])
    assert row.outcome == Outcome.SENT, row.error
    # The server takes a login only over TLS: the password never crossed in the clear.
    assert mailbox.logins.tried == [("alice-mail", True)]
    (mail,) = mailbox.messages
    assert mail["X-Offload-Webhook-Id"] == row.webhook_id


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_a_server_whose_certificate_nobody_trusts_gets_no_password_and_no_mail(alice_api, certificate, tls):
    # By default only the system's CAs are trusted: a self-signed certificate is refused.
    with smtp_server(login=("alice-mail", "s3cret-Pass"), tls=tls, certificate=certificate) as (port, mailbox):
        made = make_email(alice_api, port, smtp_tls=tls)
        row = send_a_test(alice_api, made.json()["id"])
    assert row.outcome == Outcome.FAILED
    assert "certificate is not trusted (self-signed certificate)" in row.error
    assert "OFFLOAD_NOTIFY_SMTP_CA_FILE" in row.error
    assert mailbox.messages == [] and mailbox.logins.tried == []


def test_a_trusted_certificate_for_another_name_is_refused(alice_api, settings, tmp_path, certificate):
    settings.OFFLOAD_NOTIFY_SMTP_CA_FILE = str(certificate.cert)
    # The certificate names 127.0.0.1 and localhost; "127.1" reaches the same server by another name.
    with smtp_server(tls="ssl", certificate=certificate) as (port, mailbox):
        made = make_email(alice_api, port, smtp_tls="ssl", smtp_host="127.1")
        row = send_a_test(alice_api, made.json()["id"])
    assert row.outcome == Outcome.FAILED and "certificate is not trusted" in row.error and "127.1" in row.error
    assert mailbox.messages == []


def test_a_ca_file_that_cannot_be_read_stops_the_server_at_startup(settings, tmp_path, certificate):
    settings.OFFLOAD_NOTIFY_SMTP_CA_FILE = str(certificate.cert)
    assert check_notify_ca_file() == []
    for wrong in (tmp_path / "missing.pem", certificate.key):
        settings.OFFLOAD_NOTIFY_SMTP_CA_FILE = str(wrong)
        assert [error.id for error in check_notify_ca_file()] == ["offload.E015"]


def test_a_change_without_a_password_keeps_the_stored_one(alice_api):
    with smtp_server(login=("alice-mail", "s3cret-Pass")) as (port, mailbox):
        made = make_email(alice_api, port).json()
        changed = alice_api.patch(f"{ENDPOINTS}{made['id']}/", {"name": "mine", "smtp_password": ""}, format="json")
        assert changed.status_code == 200
        assert send_a_test(alice_api, made["id"]).outcome == Outcome.SENT
    assert len(mailbox.messages) == 1


def test_without_its_own_host_an_email_endpoint_uses_the_environments_server(alice_api, settings):
    with smtp_server() as (port, mailbox):
        settings.EMAIL_PORT = port
        body = {"agent": "email", "name": "me", "to": "alice@example.com", "events": ["job.failed"]}
        made = alice_api.post(ENDPOINTS, body, format="json").json()
        assert send_a_test(alice_api, made["id"]).outcome == Outcome.SENT
    assert len(mailbox.messages) == 1


def test_an_smtp_host_on_a_private_address_is_refused_unless_allowed(alice_api, settings):
    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = False
    refused = make_email(alice_api, 2525)
    assert refused.status_code == 400 and "private" in str(refused.json())
    # A name is checked when it is resolved, at each attempt ("127.1" is no address as written,
    # and resolves to 127.0.0.1): the delivery is dead at once.
    made = make_email(alice_api, 2525, smtp_host="127.1")
    assert made.status_code == 201
    row = send_a_test(alice_api, made.json()["id"])
    assert row.outcome == Outcome.DEAD and "Refused" in row.error


@pytest.mark.parametrize(
    "fields",
    [
        {"agent": "webhook", "url": "https://hooks.example/h", "smtp_password": "x"},
        {"agent": "email", "to": "alice@example.com", "token": "x"},
        {"agent": "email", "to": "alice@example.com", "options": {"smtp_host": "smtp example"}},
        {"agent": "email", "to": "alice@example.com", "options": {"smtp_host": "a.example", "smtp_port": 0}},
        {"agent": "email", "to": "alice@example.com", "options": {"smtp_host": "a.example", "smtp_tls": "yes"}},
        {"agent": "email", "to": "alice@example.com", "options": {"smtp_host": None}},
        {"agent": "email", "to": "alice@example.com", "options": {"priority": 3}},
    ],
)
def test_smtp_settings_an_endpoint_cannot_use_answer_400(alice_api, fields):
    body = {"name": "n", "events": ["job.failed"], **fields}
    assert alice_api.post(ENDPOINTS, body, format="json").status_code == 400
    assert not Endpoint.objects.exists()
