"""Discord: a message with one embed (the kind, the item, the outcome and a link) to a webhook URL."""

from typing import Any

from offload.alerts.agents.http import Result, encode, post
from offload.alerts.messages import COLOURS, describe
from offload.alerts.models import Delivery, Endpoint


def document(delivery: Delivery) -> dict[str, Any]:
    """The execute-webhook JSON body."""
    message = describe(delivery.payload)
    fields = [
        {"name": "Kind", "value": message.kind or "—", "inline": True},
        {"name": "Item", "value": message.item or "—", "inline": True},
        {"name": "Outcome", "value": message.outcome or "—", "inline": True},
    ]
    embed = {
        "title": message.title[:256],
        "description": message.text[:4096],
        "url": message.link,
        "color": COLOURS.get(message.event, 0x1565C0),
        "fields": fields,
        "timestamp": delivery.payload.get("timestamp"),
    }
    # Mentions in a job's error must never ping anyone.
    return {"username": "Offload", "embeds": [embed], "allowed_mentions": {"parse": []}}


def send(endpoint: Endpoint, delivery: Delivery) -> Result:
    return post(endpoint.url, encode(document(delivery)), {"Content-Type": "application/json"})
