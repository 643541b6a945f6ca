"""deploy/ for real: nginx with the shipped site in front of gunicorn and uvicorn; the systemd units verify."""

import json
import re
import shutil
import subprocess

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from offload.models import Job, Library, MediaItem
from tests.support.cluster import BASE_DIR, wait_for
from tests.support.topology import Topology

SYSTEMD = BASE_DIR / "deploy" / "systemd"


@pytest.fixture
def topology(tmp_path, transactional_db, library_root):
    if shutil.which("nginx") is None:
        pytest.skip("Debian's nginx package is not installed (make test installs it)")
    served = Topology(tmp_path / "topology")
    try:
        yield served.start()
    except BaseException:
        print(served.logs())
        raise
    finally:
        served.stop()


@pytest.fixture
def item(alice, library_root, settings):
    library = Library.objects.create(name="A", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    poster = settings.MEDIA_ROOT / "thumbnails" / str(item.pk) / "poster.jpg"
    poster.parent.mkdir(parents=True)
    poster.write_bytes(bytes(range(256)) * 40)
    return item


def token(user) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


@pytest.mark.slow
def test_through_nginx_api_admin_websocket_and_media(topology, qcluster, alice, bob, staff, item):
    url = topology.url
    requests = topology.client()
    # Plain HTTP answers only with the way to HTTPS.
    plain = requests.get(f"{topology.plain_url}/admin/login/", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    # The API, with nginx's request id handed through and returned.
    listed = requests.get(f"{url}/api/v1/media/", headers=token(alice), timeout=10)
    assert listed.status_code == 200 and listed.json()["results"][0]["id"] == item.pk
    assert re.fullmatch(r"[0-9a-f]{32}", listed.headers["X-Request-ID"])
    # nginx logs a request once it has finished it, which may be just after the client has the answer.
    wait_for(
        lambda: listed.headers["X-Request-ID"] in (topology.folder / "access.log").read_text(),
        timeout=10,
        what="the request id in nginx's access log",
    )
    # Static files come from nginx itself.
    assert requests.get(f"{url}/static/offload/live.js", timeout=10).status_code == 200
    # An admin login through the form over TLS, CSRF and (Secure) session cookies included.
    browser = topology.client()
    page = browser.get(f"{url}/admin/login/", timeout=10)
    # The page names its static files by their content's hash, and nginx serves them.
    stylesheets = re.findall(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.text)
    assert stylesheets, page.text[:1000]
    css = requests.get(f"{url}{stylesheets[0]}", timeout=10)
    assert css.status_code == 200 and "immutable" in css.headers["Cache-Control"]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = browser.post(
        f"{url}/admin/login/?next=/admin/",
        data={"username": "staff", "password": "staff-password", "csrfmiddlewaretoken": csrf, "next": "/admin/"},
        headers={"Referer": f"{url}/admin/login/"},
        timeout=10,
    )
    assert done.status_code == 200 and "Log out" in done.text, done.text[:500]
    # A websocket through nginx receives a job's events, queued to finished.
    qcluster()
    with connect(f"{topology.ws_url}/ws/events/", origin=url, open_timeout=10, ssl=topology.ssl_context()) as socket:
        socket.send(json.dumps({"type": "auth", "token": token(alice)["Authorization"][6:]}))
        assert json.loads(socket.recv(timeout=10))["type"] == "hello"
        accepted = requests.post(f"{url}/api/v1/media/{item.pk}/enrich/", headers=token(alice), timeout=10)
        assert accepted.status_code == 202
        job_id = accepted.json()["id"]
        seen: list[str] = []
        while not seen or seen[-1] not in ("succeeded", "failed"):
            message = json.loads(socket.recv(timeout=60))
            if message["type"] == "job" and message["job"]["id"] == job_id:
                seen.append(message["event"])
    assert seen[0] == "queued" and seen[-1] == Job.objects.get(pk=job_id).status
    # A ranged download: the app checks access, nginx streams the part asked for.
    poster = f"{url}/media/thumbnails/{item.pk}/poster.jpg"
    part = requests.get(poster, headers={**token(alice), "Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == "bytes 100-199/10240"
    assert part.content == (bytes(range(256)) * 40)[100:200]
    assert part.headers["Content-Type"] == "image/jpeg"
    assert "X-Accel-Redirect" not in part.headers
    # Another user's item is refused as if missing; anonymous is asked to log in; the internal
    # location cannot be reached directly.
    assert requests.get(poster, headers={**token(bob), "Range": "bytes=0-9"}, timeout=10).status_code == 404
    assert requests.get(poster, timeout=10).status_code == 401
    assert requests.get(f"{url}/_offload_media/thumbnails/{item.pk}/poster.jpg", timeout=10).status_code == 404


@pytest.mark.slow
def test_the_websocket_unit_refuses_a_large_frame_before_reading_it(topology):
    # A frame past 4 KiB (the app's largest message), before any authentication: closed with
    # 1009 by the server itself, never read into the app.
    with connect(f"{topology.ws_url}/ws/events/", origin=topology.url, open_timeout=10,
                 ssl=topology.ssl_context(), max_size=None) as socket:  # fmt: skip
        socket.send("x" * 200_000)
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_the_app_hands_media_to_the_proxy_after_its_access_check(alice_api, bob_api, item, settings):
    settings.OFFLOAD_MEDIA_ACCEL_REDIRECT = "/_offload_media/"
    poster = f"/media/thumbnails/{item.pk}/poster.jpg"
    answer = alice_api.get(poster)
    assert answer.status_code == 200
    assert answer["X-Accel-Redirect"] == f"/_offload_media/thumbnails/{item.pk}/poster.jpg"
    assert answer.content == b""
    assert bob_api.get(poster).status_code == 404
    assert alice_api.get(f"/media/thumbnails/{item.pk}/missing.jpg").status_code == 404


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not present")
def test_systemd_analyze_verify_passes_on_the_units(tmp_path):
    # The units name /opt/offload and /etc/offload; point them at this checkout to verify.
    for unit in [*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.target")]:
        text = unit.read_text().replace("/opt/offload", str(BASE_DIR))
        (tmp_path / unit.name).write_text(text.replace("/etc/offload/offload.env", str(SYSTEMD / "offload.env")))
    lanes = [f"offload-worker@{cluster}.service" for cluster in settings.OFFLOAD_LANES.values()]
    units = ["offload-prepare.service", "offload-web.service", "offload-ws.service", "offload.target", *lanes]
    done = subprocess.run(
        ["systemd-analyze", "verify", *units], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "offload" not in done.stderr, done.stderr


def test_every_process_unit_is_sandboxed_reads_the_env_file_and_waits_for_the_metrics_folder_to_be_emptied():
    prepare = (SYSTEMD / "offload-prepare.service").read_text()
    assert "ExecStartPre=/usr/bin/find ${PROMETHEUS_MULTIPROC_DIR} -mindepth 1 -delete" in prepare
    for name in ("offload-prepare.service", "offload-web.service", "offload-ws.service", "offload-worker@.service"):
        unit = (SYSTEMD / name).read_text()
        assert "EnvironmentFile=/etc/offload/offload.env" in unit, name
        for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "CapabilityBoundingSet="):
            assert option in unit, (name, option)
        if name != "offload-prepare.service":
            assert "Requires=offload-prepare.service" in unit and "PartOf=offload.target" in unit, name
    target = (SYSTEMD / "offload.target").read_text()
    for cluster in settings.OFFLOAD_LANES.values():
        assert f"offload-worker@{cluster}.service" in target, cluster
    procfile = (BASE_DIR / "deploy" / "Procfile").read_text()
    names = {line.split(":")[0] for line in procfile.splitlines() if line.strip() and not line.startswith("#")}
    assert names == {"web", "ws", "worker", *list(settings.OFFLOAD_LANES)[1:]}
