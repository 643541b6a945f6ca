"""ntfy: a push to a topic URL (`https://ntfy.example/topic`), published as JSON to the server's root.

ntfy's JSON publishing takes the topic in the body, so titles and tags may hold any character
(headers could not). Options: `priority` (1–5), `tags` (a list of emoji short codes).
"""

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from offload.alerts.agents.http import Result, encode, post
from offload.alerts.messages import describe
from offload.alerts.models import Delivery, Endpoint

TAGS = {"job.succeeded": "white_check_mark", "scan.finished": "white_check_mark", "job.failed": "x"}


def split_topic(url: str) -> tuple[str, str]:
    """The server's root URL and the topic of a topic URL."""
    parts = urlsplit(url)
    prefix, _, topic = parts.path.rstrip("/").rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, prefix + "/", "", "")), topic


def request(endpoint: Endpoint, delivery: Delivery) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(URL, JSON body, headers) of the ntfy publish."""
    message = describe(delivery.payload)
    root, topic = split_topic(endpoint.url)
    options = endpoint.options or {}
    tags = list(options.get("tags") or []) + ([TAGS[message.event]] if message.event in TAGS else [])
    document = {
        "topic": topic,
        "title": message.title,
        "message": message.text,
        "tags": tags,
        "priority": int(options.get("priority") or (4 if message.event == "job.failed" else 3)),
        "click": message.link,
    }
    headers = {"Content-Type": "application/json"}
    if endpoint.secret:
        headers["Authorization"] = f"Bearer {endpoint.secret}"
    return root, document, headers


def send(endpoint: Endpoint, delivery: Delivery) -> Result:
    url, document, headers = request(endpoint, delivery)
    return post(url, encode(document), headers)
