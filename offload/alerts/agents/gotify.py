"""Gotify: `POST <server>/message` with the application's token in `X-Gotify-Key`.

Options: `priority` (0–10). The click link rides in the `client::notification` extras.
"""

from typing import Any

from offload.alerts.agents.http import Result, encode, post
from offload.alerts.messages import describe
from offload.alerts.models import Delivery, Endpoint


def request(endpoint: Endpoint, delivery: Delivery) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(URL, JSON body, headers) of the Gotify message."""
    message = describe(delivery.payload)
    priority = (endpoint.options or {}).get("priority")
    document = {
        "title": message.title,
        "message": message.text,
        "priority": int(priority if priority is not None else (8 if message.event == "job.failed" else 5)),
        "extras": {"client::notification": {"click": {"url": message.link}}},
    }
    headers = {"Content-Type": "application/json", "X-Gotify-Key": endpoint.secret}
    return endpoint.url.rstrip("/") + "/message", document, headers


def send(endpoint: Endpoint, delivery: Delivery) -> Result:
    url, document, headers = request(endpoint, delivery)
    return post(url, encode(document), headers)
