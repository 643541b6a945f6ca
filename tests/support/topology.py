"""The production topology on one machine: nginx with the shipped site, gunicorn, uvicorn."""

import os
import shutil
import sys
from pathlib import Path

from django.conf import settings

from tests.support.cluster import BASE_DIR
from tests.support.servers import Process, app_env
from tests.support.services import free_port

SITE = BASE_DIR / "deploy" / "nginx" / "offload.conf"
ACCEL = "/_offload_media/"


def topology_env(**extra: str) -> dict[str, str]:
    """The environment deploy/systemd/offload.env gives the app, pointed at the test's services."""
    return app_env(OFFLOAD_TRUSTED_PROXIES="127.0.0.1", OFFLOAD_MEDIA_ACCEL_REDIRECT=ACCEL, **extra)


def nginx_config(folder: Path, listen: int, http_port: int, ws_port: int) -> Path:
    """The shipped site, its ports and folders pointed at this test, inside a minimal nginx.conf."""
    site = SITE.read_text()
    for shipped, here in (
        ("listen 80;", f"listen 127.0.0.1:{listen};"),
        ("127.0.0.1:8000", f"127.0.0.1:{http_port}"),
        ("127.0.0.1:8001", f"127.0.0.1:{ws_port}"),
        ("/srv/offload/static/", f"{BASE_DIR}/offload/static/"),
        ("/var/lib/offload/media/", f"{settings.MEDIA_ROOT}/"),
    ):
        assert shipped in site, shipped
        site = site.replace(shipped, here)
    (folder / "offload.conf").write_text(site)
    temp = "\n".join(
        f"  {kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would switch to an unprivileged user that cannot read pytest's folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = f"""{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 256; }}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  log_format offload '$remote_addr "$request" $status $request_id';
  access_log {folder}/access.log offload;
{temp}
  include {folder}/offload.conf;
}}
"""
    conf = folder / "nginx.conf"
    conf.write_text(main)
    return conf


class Topology:
    """nginx on `url` in front of gunicorn (HTTP) and uvicorn (/ws/), as deploy/ ships them."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port, http_port, ws_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        # Production settings (DEBUG off), but this nginx serves plain HTTP, where a real one
        # terminates TLS: cookies marked Secure would never come back to it.
        env = topology_env(SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0")
        self.processes = [
            Process("gunicorn", [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi",
                                 "--bind", f"127.0.0.1:{http_port}", "--workers", "2"], folder / "gunicorn.log", env),
            Process("uvicorn", [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                                "--port", str(ws_port), "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
                                "--no-access-log"], folder / "uvicorn.log", env),
            Process("nginx", [shutil.which("nginx") or "nginx", "-p", str(folder), "-c",
                              str(nginx_config(folder, self.port, http_port, ws_port)), "-g", "daemon off;"],
                    folder / "nginx.log", dict(os.environ)),
        ]  # fmt: skip
        self._probes = [f"http://127.0.0.1:{http_port}/healthz/live", f"http://127.0.0.1:{ws_port}/healthz/live"]

    def start(self) -> "Topology":
        gunicorn, uvicorn, nginx = (p.start() for p in self.processes)
        gunicorn.wait_http(self._probes[0])
        uvicorn.wait_http(self._probes[1])
        nginx.wait_http(f"{self.url}/healthz/live")
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-2000:]}" for p in self.processes)
