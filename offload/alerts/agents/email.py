"""Email through Django's email backend: plain text and HTML.

The SMTP server is the environment's (EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER…) unless the
endpoint names its own (`options.smtp_host`, with `smtp_port`, `smtp_username`, `smtp_tls`
and its password in `secret`). A server an endpoint names is someone's input, so it gets the
address rules of a URL (offload.lib.outbound): resolved once per attempt, every address
checked, and the connection made to the checked address (TLS still checks the name).

Its certificate is always checked, against the system's CAs and those the operator adds with
OFFLOAD_NOTIFY_SMTP_CA_FILE. No endpoint can turn the check off: whoever holds an API token
would then send their SMTP password to whoever answers in the middle; which CAs to trust is
the operator's call, made once for the server.
"""

import smtplib
import ssl
import time
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend
from django.utils.functional import cached_property
from django.utils.html import format_html

from offload.alerts.agents.http import Result
from offload.alerts.messages import describe
from offload.alerts.models import Delivery, Endpoint
from offload.lib import outbound

# The port each TLS mode listens on by default.
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


def message(endpoint: Endpoint, delivery: Delivery) -> EmailMultiAlternatives:
    """The email, its HTML escaped (a job's error is text, never markup)."""
    words = describe(delivery.payload)
    text = f"{words.text}\n\n{words.link}\n"
    html = format_html('<p>{}</p><p><a href="{}">{}</a></p>', words.text, words.link, words.link)
    mail = EmailMultiAlternatives(words.title, text, settings.DEFAULT_FROM_EMAIL, [endpoint.to])
    mail.extra_headers = {"X-Offload-Webhook-Id": delivery.webhook_id}
    mail.attach_alternative(html, "text/html")
    return mail


def _pinned(base: type[smtplib.SMTP], address: str) -> type[smtplib.SMTP]:
    """An SMTP class that connects to `address` whatever name it is given (the name stays for TLS)."""

    class Pinned(base):
        def _get_socket(self, host, port, timeout):
            return super()._get_socket(address, port, timeout)

    return Pinned


class PinnedEmailBackend(EmailBackend):
    """Django's SMTP backend, connected to an address checked beforehand."""

    def __init__(self, *, address: str, ca_file: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address
        self.ca_file = ca_file

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        # STARTTLS and SSL alike: the certificate checked against the name, with the operator's CAs.
        return outbound.tls_context(self.ca_file)

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return _pinned(smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP, self.address)


def connection_for(endpoint: Endpoint) -> EmailBackend:
    """The endpoint's own SMTP server, checked, or the environment's; Refused or SendFailed otherwise."""
    options = endpoint.options or {}
    host = options.get("smtp_host")
    if not host:
        return get_connection(timeout=settings.OFFLOAD_NOTIFY_TIMEOUT)
    tls = options.get("smtp_tls", "starttls")
    port = options.get("smtp_port") or DEFAULT_PORTS[tls]
    address = outbound.resolve(outbound.Target("smtp", host, port, ""), settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE)
    return PinnedEmailBackend(
        address=address,
        ca_file=settings.OFFLOAD_NOTIFY_SMTP_CA_FILE,
        host=host,
        port=port,
        username=options.get("smtp_username", ""),
        password=endpoint.secret,
        use_tls=tls == "starttls",
        use_ssl=tls == "ssl",
        timeout=settings.OFFLOAD_NOTIFY_TIMEOUT,
    )


def send(endpoint: Endpoint, delivery: Delivery) -> Result:
    started = time.monotonic()
    try:
        with connection_for(endpoint) as connection:
            connection.send_messages([message(endpoint, delivery)])
    except outbound.Refused as exc:
        return Result(ok=False, error=f"Refused: {exc}", permanent=True)
    except outbound.SendFailed as exc:
        return Result(ok=False, error=str(exc), latency_ms=_ms(started))
    except smtplib.SMTPRecipientsRefused as exc:
        return Result(ok=False, error=f"Recipient refused: {exc}", latency_ms=_ms(started))
    except ssl.SSLCertVerificationError as exc:
        return Result(ok=False, error=untrusted(exc), latency_ms=_ms(started))
    except smtplib.SMTPAuthenticationError as exc:
        return Result(ok=False, error=f"The SMTP server refused the login: {exc}", latency_ms=_ms(started))
    except (smtplib.SMTPException, OSError) as exc:
        return Result(ok=False, error=f"{type(exc).__name__}: {exc}", latency_ms=_ms(started))
    return Result(ok=True, latency_ms=_ms(started), response="250 accepted")


def untrusted(exc: ssl.SSLCertVerificationError) -> str:
    """Why the SMTP server's certificate was refused, and what would make it trusted."""
    return (
        f"The SMTP server's certificate is not trusted ({exc.verify_message or exc.reason}): nothing was sent. "
        "It needs a certificate for its name from a known CA, or the server's operator can trust its CA "
        "with OFFLOAD_NOTIFY_SMTP_CA_FILE."
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
