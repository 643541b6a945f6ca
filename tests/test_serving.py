"""The serving setups: gunicorn for HTTP beside uvicorn for /ws/ (production), and uvicorn on one port."""

import json
import re

import pytest
import requests
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from offload.models import Job, Library, MediaItem

pytestmark = pytest.mark.slow

# The settings are production's (DEBUG off), so cookies are Secure; these servers speak plain HTTP.
PLAIN_HTTP = {"SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0"}


@pytest.fixture
def item(alice, library_root):
    library = Library.objects.create(name="A", path=str(library_root), owner=alice)
    return MediaItem.objects.create(library=library, relative_path="a.mp4")


def token_header(user) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def admin_login(url: str, username: str) -> requests.Session:
    """A real login through the admin's form (CSRF cookie, session cookie)."""
    browser = requests.Session()
    page = browser.get(f"{url}/admin/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = browser.post(
        f"{url}/admin/login/?next=/admin/",
        data={"username": username, "password": f"{username}-password", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{url}/admin/login/"},
        timeout=10,
    )
    assert done.status_code == 200 and "Log out" in done.text, done.text[:500]
    return browser


def test_gunicorn_serves_the_api_and_the_admin_and_uvicorn_the_websocket(
    wsgi_server, asgi_server, qcluster, alice, staff, item
):
    # Plain HTTP here, where a deployment has TLS in front: cookies without Secure come back.
    http, ws = wsgi_server(**PLAIN_HTTP), asgi_server(**PLAIN_HTTP)
    qcluster()
    with connect(f"{ws.ws_url}/ws/events/", origin=ws.url, open_timeout=10) as socket:
        socket.send(json.dumps({"type": "auth", "token": token_header(alice)["Authorization"][6:]}))
        assert json.loads(socket.recv(timeout=10))["type"] == "hello"
        accepted = requests.post(f"{http.url}/api/v1/media/{item.pk}/enrich/", headers=token_header(alice), timeout=10)
        assert accepted.status_code == 202
        job_id = accepted.json()["id"]
        seen = []
        while not seen or seen[-1] not in ("succeeded", "failed"):
            message = json.loads(socket.recv(timeout=60))
            if message["type"] == "job" and message["job"]["id"] == job_id:
                seen.append(message["event"])
    assert seen[0] == "queued" and seen[-1] in ("succeeded", "failed")
    assert Job.objects.get(pk=job_id).status == seen[-1]
    # Sessions and the admin work through gunicorn as they did through the ASGI handler.
    browser = admin_login(http.url, staff.username)
    assert browser.get(f"{http.url}/admin/offload/job/{job_id}/change/", timeout=10).status_code == 200
    assert requests.get(f"{http.url}/healthz/live", timeout=10).status_code == 200


def test_the_one_port_server_hands_http_to_the_wsgi_handler_with_sessions_and_csrf(asgi_server, staff, alice, item):
    server = asgi_server(**PLAIN_HTTP)
    browser = admin_login(server.url, staff.username)
    page = browser.get(f"{server.url}/admin/offload/mediaitem/", timeout=10)
    assert page.status_code == 200 and "a.mp4" in page.text
    # A session write without its CSRF token is refused, with one it is accepted.
    refused = browser.post(f"{server.url}/api/v1/media/{item.pk}/probe/", timeout=10)
    assert refused.status_code == 403
    accepted = browser.post(
        f"{server.url}/api/v1/media/{item.pk}/probe/",
        headers={"X-CSRFToken": browser.cookies["csrftoken"], "Referer": f"{server.url}/admin/"},
        timeout=10,
    )
    assert accepted.status_code == 202
    # Static files come from the same server (whitenoise, through the WSGI handler).
    assert requests.get(f"{server.url}/static/offload/live.js", timeout=10).status_code == 200
