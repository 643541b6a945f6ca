"""Email through Django's email backend (SMTP settings from the environment): plain text and HTML."""

import smtplib
import time

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils.html import format_html

from offload.alerts.agents.http import Result
from offload.alerts.messages import describe
from offload.alerts.models import Delivery, Endpoint


def message(endpoint: Endpoint, delivery: Delivery) -> EmailMultiAlternatives:
    """The email, its HTML escaped (a job's error is text, never markup)."""
    words = describe(delivery.payload)
    text = f"{words.text}\n\n{words.link}\n"
    html = format_html('<p>{}</p><p><a href="{}">{}</a></p>', words.text, words.link, words.link)
    mail = EmailMultiAlternatives(words.title, text, settings.DEFAULT_FROM_EMAIL, [endpoint.to])
    mail.extra_headers = {"X-Offload-Webhook-Id": delivery.webhook_id}
    mail.attach_alternative(html, "text/html")
    return mail


def send(endpoint: Endpoint, delivery: Delivery) -> Result:
    started = time.monotonic()
    try:
        with get_connection(timeout=settings.OFFLOAD_NOTIFY_TIMEOUT) as connection:
            connection.send_messages([message(endpoint, delivery)])
    except smtplib.SMTPRecipientsRefused as exc:
        return Result(ok=False, error=f"Recipient refused: {exc}", latency_ms=_ms(started))
    except (smtplib.SMTPException, OSError) as exc:
        return Result(ok=False, error=f"{type(exc).__name__}: {exc}", latency_ms=_ms(started))
    return Result(ok=True, latency_ms=_ms(started), response="250 accepted")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
