"""From a second terminal beside `make run`: manage.py reads the environment the run chose (var/run.env)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from offload import jobs
from tests.support import cluster
from tests.support.cluster import BASE_DIR
from tests.support.servers import run_script

# A second terminal has none of these: `make run` chose them.
CHOSEN_BY_THE_RUN = (
    "SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX", "TYPESENSE_URL", "TYPESENSE_API_KEY",
    "OFFLOAD_LIBRARY_ROOTS", "MEDIA_ROOT", "PROMETHEUS_MULTIPROC_DIR",
)  # fmt: skip


def second_terminal(var_dir, *args: str, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in CHOSEN_BY_THE_RUN and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**env, "OFFLOAD_VAR_DIR": str(var_dir), **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def prepared_run(tmp_path):
    """What `make run`'s preparation leaves: its chosen environment in var/run.env."""
    run = run_script()
    var_dir = tmp_path / "var"
    # make_private sets the process's umask for the run's children: give this process its own back.
    umask = os.umask(0o022)
    try:
        run.make_private(var_dir)
    finally:
        os.umask(umask)
    env = {
        "DATABASE_URL": cluster.test_database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "PATH": os.environ["PATH"],
        "HOME": "/nonexistent",
    }
    run.development_settings(env, var_dir)
    return var_dir, run.write_run_env(env, var_dir), env


def test_manage_py_beside_make_run_lists_the_runs_jobs(prepared_run, transactional_db, alice):
    var_dir, run_env, _ = prepared_run
    job, _ = jobs.enqueue("system.noop", user=alice)
    assert run_env.stat().st_mode & 0o777 == 0o600
    listed = second_terminal(var_dir, "jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert "system.noop" in listed.stdout and str(job.pk) in listed.stdout


def test_the_run_env_carries_the_settings_variables_and_nothing_else(prepared_run):
    _, run_env, env = prepared_run
    written = dict(line.split("=", 1) for line in run_env.read_text().splitlines() if not line.startswith("#"))
    assert set(written) == {"DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX", "MEDIA_ROOT", "PROMETHEUS_MULTIPROC_DIR",
                            "SECRET_KEY", "DEBUG"}  # fmt: skip
    assert written["SECRET_KEY"] == env["SECRET_KEY"]


def test_without_a_run_a_command_still_asks_for_a_secret_key(tmp_path):
    done = second_terminal(tmp_path / "no-run", "jobs", "list")
    assert done.returncode != 0 and "SECRET_KEY is not set" in done.stderr


def test_a_configured_environment_never_takes_the_runs_values(prepared_run):
    var_dir, _, _ = prepared_run
    # Its own key, and a database that does not answer: the run's database is not used.
    done = second_terminal(
        var_dir, "jobs", "list", SECRET_KEY="x" * 60, DATABASE_URL="postgres://postgres@127.0.0.1:9/none"
    )
    assert done.returncode != 0
    assert "port 9 failed" in done.stderr, done.stderr[-2000:]
