"""The production topology on one machine: nginx with the shipped site over TLS, in front of the
shipped units' gunicorn and uvicorn commands."""

import os
import shlex
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import requests
from django.conf import settings

from tests.support.cluster import BASE_DIR
from tests.support.servers import Process, app_env
from tests.support.services import free_port

SITE = BASE_DIR / "deploy" / "nginx" / "offload.conf"
SYSTEMD = BASE_DIR / "deploy" / "systemd"
ACCEL = "/_offload_media/"
SERVER_NAME = "offload.example.org"
VENV_BIN = "/opt/offload/.venv/bin/"


def topology_env(**extra: str) -> dict[str, str]:
    """The environment deploy/systemd/offload.env gives the app, pointed at the test's services."""
    return app_env(
        OFFLOAD_TRUSTED_PROXIES="127.0.0.1", OFFLOAD_MEDIA_ACCEL_REDIRECT=ACCEL, TRUST_X_FORWARDED_PROTO="1", **extra
    )


def unit_command(unit: str, ports: dict[str, str]) -> list[str]:
    """A shipped unit's ExecStart as arguments: the venv's programs run by this interpreter, its ports replaced."""
    line = next(line for line in (SYSTEMD / unit).read_text().splitlines() if line.startswith("ExecStart="))
    program, *args = shlex.split(line.removeprefix("ExecStart="))
    assert program.startswith(VENV_BIN), program
    name = program.removeprefix(VENV_BIN)
    start = [sys.executable] if name == "python" else [sys.executable, "-m", name]
    return start + [ports.get(arg, arg) for arg in args]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for the site's name and 127.0.0.1, as docs/deploy.md makes one for a first start."""
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={SERVER_NAME}",
         "-addext", f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def nginx_config(folder: Path, ports: dict[str, int], static_root: Path, cert: Path, key: Path) -> Path:
    """The shipped site, its ports, folders and certificate pointed at this test, inside a minimal nginx.conf."""
    site = SITE.read_text()
    for shipped, here in (
        ("listen 80;", f"listen 127.0.0.1:{ports['plain']};"),
        ("    listen [::]:80;\n", ""),
        ("listen 443 ssl;", f"listen 127.0.0.1:{ports['tls']} ssl;"),
        ("    listen [::]:443 ssl;\n", ""),
        (f"/etc/letsencrypt/live/{SERVER_NAME}/fullchain.pem", str(cert)),
        (f"/etc/letsencrypt/live/{SERVER_NAME}/privkey.pem", str(key)),
        ("/var/log/nginx/offload.access.log", str(folder / "access.log")),
        ("/var/www/html", str(folder / "acme")),
        ("127.0.0.1:8000", f"127.0.0.1:{ports['http']}"),
        ("127.0.0.1:8001", f"127.0.0.1:{ports['ws']}"),
        ("/srv/offload/static/", f"{static_root}/"),
        ("/srv/offload/media/", f"{settings.MEDIA_ROOT}/"),
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
{temp}
  include {folder}/offload.conf;
}}
"""
    conf = folder / "nginx.conf"
    conf.write_text(main)
    return conf


class Topology:
    """nginx on `url` (TLS; `plain_url` redirects) in front of the units' gunicorn (HTTP) and uvicorn (/ws/)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        ports = {"plain": free_port(), "tls": free_port(), "http": free_port(), "ws": free_port()}
        self.url = f"https://127.0.0.1:{ports['tls']}"
        self.ws_url = f"wss://127.0.0.1:{ports['tls']}"
        self.plain_url = f"http://127.0.0.1:{ports['plain']}"
        self.ca, key = self_signed_certificate(folder)
        self.static_root = folder / "static"
        # Production settings (DEBUG off, Secure cookies) behind TLS, static files collected.
        self.env = topology_env(STATIC_ROOT=str(self.static_root), WEB_CONCURRENCY="2")
        web = unit_command("offload-web.service", {"127.0.0.1:8000": f"127.0.0.1:{ports['http']}"})
        ws = unit_command("offload-ws.service", {"8001": str(ports["ws"])})
        nginx = [shutil.which("nginx") or "nginx", "-p", str(folder), "-c",
                 str(nginx_config(folder, ports, self.static_root, self.ca, key)), "-g", "daemon off;"]  # fmt: skip
        self.processes = [
            Process("gunicorn", web, folder / "gunicorn.log", self.env),
            Process("uvicorn", ws, folder / "uvicorn.log", self.env),
            Process("nginx", nginx, folder / "nginx.log", dict(os.environ)),
        ]
        self._probes = [
            f"http://127.0.0.1:{ports['http']}/healthz/live",
            f"http://127.0.0.1:{ports['ws']}/healthz/live",
        ]

    def client(self) -> requests.Session:
        """A browser of the site: it trusts the site's certificate."""
        session = requests.Session()
        # REQUESTS_CA_BUNDLE in the environment would win over the session's own verify.
        session.trust_env = False
        session.verify = str(self.ca)
        return session

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start(self) -> "Topology":
        collected = subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput"],
            cwd=BASE_DIR, env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert collected.returncode == 0, collected.stderr
        gunicorn, uvicorn, nginx = (p.start() for p in self.processes)
        gunicorn.wait_http(self._probes[0])
        uvicorn.wait_http(self._probes[1])
        nginx.wait_http(f"{self.plain_url}/.well-known/acme-challenge/missing", expect=404)
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-2000:]}" for p in self.processes)
