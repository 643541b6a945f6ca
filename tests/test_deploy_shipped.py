"""What deploy/ ships holds to what the code declares: a worker unit and a Procfile line per lane,
a start refused with placeholder secrets, secrets from files, probes on the loopback, hashed
static names, and the alerting pieces an operator needs."""

import os
import re
import secrets
import shlex
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

from tests.support.cluster import BASE_DIR
from tests.support.settings_process import python_with_settings

DEPLOY = BASE_DIR / "deploy"
SYSTEMD = DEPLOY / "systemd"
ENV_FILE = SYSTEMD / "offload.env"


def unit_lines(name: str, key: str) -> list[str]:
    """Every value of `key=` in a shipped unit, in order."""
    text = (SYSTEMD / name).read_text()
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def procfile() -> dict[str, str]:
    lines = (DEPLOY / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def shipped_env() -> dict[str, str]:
    lines = ENV_FILE.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


# --- One list of lanes ---------------------------------------------------------


def test_the_target_wants_one_worker_unit_per_declared_lane():
    wanted = {unit for line in unit_lines("offload.target", "Wants") for unit in line.split()}
    workers = {unit for unit in wanted if unit.startswith("offload-worker@")}
    assert workers == {f"offload-worker@{cluster}.service" for cluster in settings.OFFLOAD_LANES.values()}
    assert {"offload-prepare.service", "offload-web.service", "offload-ws.service"} <= wanted


def test_the_procfile_runs_one_cluster_per_declared_lane_and_no_one_off_step():
    processes = procfile()
    clusters = {
        (re.search(r"Q_CLUSTER_NAME=(\S+)", command) or [None, settings.Q_CLUSTER["name"]])[1]
        for command in processes.values()
        if command.endswith("manage.py qcluster")
    }
    assert clusters == set(settings.OFFLOAD_LANES.values())
    # honcho stops every process when one ends: nothing in it may end by design.
    assert "release" not in processes
    assert not [c for c in processes.values() if "migrate" in c or "collectstatic" in c]
    # The ports nginx and Prometheus expect, not honcho's $PORT.
    assert "--bind 127.0.0.1:8000" in processes["web"] and "PORT" not in processes["web"]
    assert "--port 8001" in processes["ws"]


def test_the_docs_name_every_lanes_worker_unit_and_cluster():
    deploy_doc = (BASE_DIR / "docs" / "deploy.md").read_text()
    operations = (BASE_DIR / "docs" / "operations.md").read_text()
    api = (BASE_DIR / "docs" / "api.md").read_text()
    for lane, cluster in settings.OFFLOAD_LANES.items():
        assert f'"lane:{lane}"' in api, lane
        assert f"offload-worker@{cluster}" in deploy_doc, lane
        assert f"offload-worker@{cluster}" in operations, lane
        if lane != "default":
            assert f"Q_CLUSTER_NAME={cluster} python manage.py qcluster" in operations, lane


# --- The websocket unit ----------------------------------------------------------


@pytest.mark.parametrize("command", [unit_lines("offload-ws.service", "ExecStart")[0], procfile()["ws"]])
def test_the_websocket_server_reads_small_frames_with_one_explicit_worker(command):
    args = shlex.split(command)
    assert args[args.index("--ws-max-size") + 1] == "4096"
    # uvicorn would otherwise take WEB_CONCURRENCY (gunicorn's, 4 in the env file) as its own.
    assert args[args.index("--workers") + 1] == "1"


# --- Refusing to start unsafely ----------------------------------------------------


def check_deploy(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """`manage.py check --deploy --fail-level ERROR` as offload-prepare.service runs it, with this environment."""
    given = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TYPESENSE_", "DATABASE_"))}
    given.pop("SECRET_KEY", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=BASE_DIR,
        env={**given, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def documented_substitutions() -> dict[str, str]:
    """The env file with each change-me replaced by a random value, as docs/deploy.md says."""
    env = shipped_env()
    for name, value in env.items():
        env[name] = value.replace("change-me", secrets.token_urlsafe(48))
    return env


def test_the_prepare_unit_checks_the_secrets_before_anything_else():
    first = unit_lines("offload-prepare.service", "ExecStartPre")[0]
    assert first.endswith("manage.py check --deploy --fail-level ERROR")
    release = [line for line in (DEPLOY / "release.sh").read_text().splitlines() if line.startswith("python ")]
    prepare = [
        line.split("/bin/", 1)[1]
        for key in ("ExecStartPre", "ExecStart")
        for line in unit_lines("offload-prepare.service", key)
        if "manage.py" in line
    ]
    assert release == prepare


def test_the_env_file_gives_both_redis_instances_and_the_database_a_password():
    env = shipped_env()
    for name in ("REDIS_URL", "REDIS_CACHE_URL", "DATABASE_URL"):
        assert urlsplit(env[name]).password, name
    assert urlsplit(env["REDIS_URL"]).port != urlsplit(env["REDIS_CACHE_URL"]).port


def test_the_env_files_placeholders_fail_the_start(tmp_path):
    done = check_deploy(tmp_path, **{**shipped_env(), "MEDIA_ROOT": str(tmp_path / "media")})
    assert done.returncode != 0
    output = done.stdout + done.stderr
    for error in ("offload.E012", "offload.E013", "offload.E014"):
        assert error in output, output
    assert output.count("offload.E014") == 3  # the database's and both Redis instances' passwords


def test_a_long_placeholder_key_and_a_short_typesense_key_fail_the_start(tmp_path):
    done = check_deploy(
        tmp_path, SECRET_KEY="change-me-to-a-long-random-string-" + "x" * 40, TYPESENSE_API_KEY="change-me", DEBUG="0"
    )
    assert done.returncode != 0
    assert "offload.E012" in done.stderr + done.stdout and "offload.E013" in done.stderr + done.stdout


def test_the_env_file_with_its_documented_substitutions_passes_the_check(tmp_path):
    done = check_deploy(tmp_path, **{**documented_substitutions(), "MEDIA_ROOT": str(tmp_path / "media")})
    assert done.returncode == 0, done.stdout + done.stderr


def settings_values(env: dict[str, str], *names: str) -> list:
    code = (
        "import json; from django.conf import settings as s; "
        f"print(json.dumps([str(getattr(s, n)) if n != 'DB_PASSWORD' else s.DATABASES['default']['PASSWORD'] "
        f"for n in {list(names)!r}]))"
    )
    done = python_with_settings(code, lambda k: k in ("SECRET_KEY", "TYPESENSE_API_KEY", "REDIS_URL"), **env)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout.strip().splitlines()[-1])


def test_secrets_come_from_files_and_systemd_credentials(tmp_path):
    (tmp_path / "secret_key").write_text("k" * 20 + secrets.token_urlsafe(40) + "\n")
    (tmp_path / "redis").write_text("state pass/word\n")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "TYPESENSE_API_KEY").write_text("from-a-credential\n")
    (credentials / "DATABASE_PASSWORD").write_text("db-secret\n")
    values = settings_values(
        {
            "SECRET_KEY_FILE": str(tmp_path / "secret_key"),
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "REDIS_PASSWORD_FILE": str(tmp_path / "redis"),
            "CREDENTIALS_DIRECTORY": str(credentials),
            "DATABASE_URL": "postgres://offload@127.0.0.1:5432/offload",
        },
        "SECRET_KEY",
        "TYPESENSE_API_KEY",
        "REDIS_URL",
        "REDIS_CACHE_URL",
        "DB_PASSWORD",
    )
    assert values[0] == (tmp_path / "secret_key").read_text().strip()
    assert values[1] == "from-a-credential"
    assert values[2] == values[3] == "redis://:state%20pass%2Fword@127.0.0.1:6379/0"
    assert values[4] == "db-secret"


def test_a_secret_file_that_cannot_be_read_stops_the_start(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.SECRET_KEY"],
        cwd=BASE_DIR,
        env={**os.environ, "SECRET_KEY": "", "SECRET_KEY_FILE": str(tmp_path / "missing"),
             "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and f"SECRET_KEY: cannot read {tmp_path / 'missing'}" in done.stderr


# --- Probes on the loopback ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz/live", "/healthz/ready", "/metrics"])
def test_probes_answer_the_loopback_whatever_allowed_hosts_says(client, settings, path):
    settings.ALLOWED_HOSTS = ["offload.example.org"]
    # As the shipped Prometheus config scrapes it, and a probe on the host asks it.
    assert client.get(path, HTTP_HOST="127.0.0.1:8000").status_code == 200
    # From elsewhere, or through the proxy, the host must be the site's.
    assert client.get(path, HTTP_HOST="127.0.0.1:8000", REMOTE_ADDR="203.0.113.9").status_code == 400
    assert client.get(path, HTTP_HOST="127.0.0.1:8000", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 400


@pytest.mark.django_db
def test_other_pages_stay_held_to_allowed_hosts_on_the_loopback(client, settings):
    settings.ALLOWED_HOSTS = ["offload.example.org"]
    assert client.get("/api/v1/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    assert client.get("/admin/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    assert client.get("/admin/login/", HTTP_HOST="offload.example.org").status_code == 200


# --- Static names, logs, alerting ------------------------------------------------------


def test_collected_static_files_are_named_by_their_content(tmp_path):
    env = {**os.environ, "STATIC_ROOT": str(tmp_path / "static")}
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=BASE_DIR, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    code = (
        "import django; django.setup(); from django.templatetags.static import static; print(static('offload/live.js'))"
    )
    named = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env={**env, "DJANGO_SETTINGS_MODULE":
                           "config.settings"}, capture_output=True, text=True, timeout=60)  # fmt: skip
    url = named.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"/static/offload/live\.[0-9a-f]{12}\.js", url), url
    assert (tmp_path / url.removeprefix("/")).read_bytes() == (BASE_DIR / "offload/static/offload/live.js").read_bytes()


def test_nginx_logs_the_request_id_it_hands_to_the_app():
    site = (DEPLOY / "nginx" / "offload.conf").read_text()
    formats = dict(re.findall(r"log_format (\w+) ((?:'[^']*'\s*)+);", site))
    assert "$request_id" in formats["offload_request"]
    assert site.count("access_log /var/log/nginx/offload.access.log offload_request;") == 2


def test_the_site_is_https_with_a_redirect_from_port_80():
    site = (DEPLOY / "nginx" / "offload.conf").read_text()
    plain, tls = site.split("server {")[1:3]
    assert "listen 80;" in plain and "return 301 https://$host$request_uri;" in plain
    assert "proxy_pass" not in plain
    assert "listen 443 ssl;" in tls and "ssl_certificate " in tls and "proxy_pass http://offload_http;" in tls


def test_prometheus_sends_alerts_to_an_alertmanager_and_watches_the_disk():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert "OffloadDiskSpaceLow" in names
