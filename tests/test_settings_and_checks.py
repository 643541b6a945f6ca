"""Settings from the environment, the SQLite defaults, and the startup checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels.routing import ProtocolTypeRouter
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from offload.checks import check_q_cluster
from offload.jobs.kinds import get_kind
from offload.models import Job, Library, MediaItem
from tests.support.settings_process import python_with_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return python_with_settings(code, lambda k: k == "DATABASE_URL", **env)


def test_without_database_url_sqlite_is_set_up_for_concurrent_writers(tmp_path):
    code = """
import django, json
django.setup()
from django.db import connection
from django.conf import settings
with connection.cursor() as c:
    c.execute("PRAGMA journal_mode"); mode = c.fetchone()[0]
    c.execute("PRAGMA busy_timeout"); busy = c.fetchone()[0]
db = settings.DATABASES["default"]
print(json.dumps({"engine": db["ENGINE"], "mode": mode, "busy": busy,
                  "txn": db["OPTIONS"]["transaction_mode"], "age": db["CONN_MAX_AGE"]}))
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts == {
        "engine": "django.db.backends.sqlite3",
        "mode": "wal",
        "busy": 30000,
        "txn": "IMMEDIATE",
        "age": 600,
    }


def test_two_processes_writing_sqlite_at_once_never_see_database_is_locked(tmp_path):
    database = tmp_path / "db.sqlite3"
    writer = f"""
import django, sys
from django.conf import settings
django.setup()
settings.DATABASES["default"]["NAME"] = {str(database)!r}
from django.db import connection, transaction
with connection.cursor() as c:
    c.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
for i in range(300):
    with transaction.atomic():
        with connection.cursor() as c:
            c.execute("SELECT count(*) FROM t")
            c.execute("INSERT INTO t VALUES (%s)", [i])
print("ok")
"""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", writer],
            cwd=BASE_DIR,
            env={
                **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                "DJANGO_SETTINGS_MODULE": "config.settings",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for (out, err), proc in zip(outputs, procs, strict=True):
        assert proc.returncode == 0, err
        assert "database is locked" not in err
        assert out.strip().endswith("ok")


def test_database_url_selects_postgresql_with_persistent_connections():
    done = run_python(
        "import django, json; django.setup(); from django.conf import settings; "
        "d = settings.DATABASES['default']; print(json.dumps([d['ENGINE'], d['NAME'], d['CONN_MAX_AGE']]))",
        DATABASE_URL="postgres://someone@db.example:5433/offload",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["django.db.backends.postgresql", "offload", 600]


def test_bad_environment_values_fail_loudly():
    done = run_python("import django; django.setup()", OFFLOAD_Q_TIMEOUT="soon")
    assert done.returncode != 0
    assert "OFFLOAD_Q_TIMEOUT must be an integer" in done.stderr


def test_asgi_application_routes_http_and_websockets():
    from config.asgi import application

    assert isinstance(application, ProtocolTypeRouter)
    assert set(application.application_mapping) == {"http", "websocket"}


def test_default_q_cluster_settings_pass_the_checks():
    assert check_q_cluster() == []


@pytest.mark.parametrize(
    ("change", "error_id"),
    [
        ({"retry": 3600}, "offload.E002"),
        ({"retry": 3601}, "offload.E002"),
        ({"catch_up": True}, "offload.E004"),
        ({"orm": "other"}, "offload.E005"),
        ({"timeout": 0}, "offload.E001"),
    ],
)
def test_unsafe_q_cluster_settings_are_refused(settings, change, error_id):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 3600, "retry": 3660, **change}
    errors = [e for e in check_q_cluster() if isinstance(e, Error)]
    assert [e.id for e in errors] == [error_id]


def test_the_checks_run_with_manage_py_check(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "catch_up": True}
    with pytest.raises(SystemCheckError, match=r"offload\.E004"):
        call_command("check")


def test_a_transcode_timeout_scales_with_the_media_and_stops_at_the_cluster_timeout(alice, library_root, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 8 * 3600}
    library = Library.objects.create(name="L", path=str(library_root), owner=alice)
    transcode, probe = get_kind("media.transcode"), get_kind("media.probe")

    def job_for(duration, probed=True):
        name = f"{MediaItem.objects.count()}.mp4"
        probed_at = timezone.now() if probed else None
        item = MediaItem.objects.create(library=library, relative_path=name, duration=duration, probed_at=probed_at)
        return Job(kind="media.transcode", target_type="media", target_id=item.pk)

    assert transcode.timeout_for(job_for(60.0)) == 300 + 3 * 60
    assert transcode.timeout_for(job_for(2 * 3600.0)) == 300 + 3 * 2 * 3600
    assert transcode.timeout_for(job_for(5 * 3600.0)) == 8 * 3600
    # Not probed yet: as long as the cluster allows. Probed, with no duration (a still image): the base.
    assert transcode.timeout_for(job_for(None, probed=False)) == 8 * 3600
    assert transcode.timeout_for(job_for(None)) == 300
    assert probe.timeout_for(job_for(2 * 3600.0)) == 120


def test_max_attempts_must_be_explicit(settings):
    settings.Q_CLUSTER = {k: v for k, v in settings.Q_CLUSTER.items() if k != "max_attempts"}
    assert [e.id for e in check_q_cluster()] == ["offload.E003"]


def test_loading_the_settings_creates_no_folder_and_starting_the_app_creates_what_it_writes_to(tmp_path):
    var, metrics = tmp_path / "var", tmp_path / "metrics"
    code = """
import importlib, json, pathlib, sys
settings = importlib.import_module("config.settings")
after_import = [pathlib.Path(p).exists() for p in sys.argv[1:]]
import django
django.setup()
print(json.dumps([after_import, [pathlib.Path(p).exists() for p in sys.argv[1:]]]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(var), str(metrics)],
        cwd=BASE_DIR,
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "OFFLOAD_VAR_DIR": str(var),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[False, False], [True, True]]
