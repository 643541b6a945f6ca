"""Production-safe settings, and the web server's trust in forwarding headers."""

import pytest


def _python(code: str, tmp_path, *, drop=(), **env: str):
    import os
    import subprocess
    import sys

    from tests.support.cluster import BASE_DIR

    base = {k: v for k, v in os.environ.items() if k not in (*drop, "DJANGO_SETTINGS_MODULE")}
    return subprocess.run(
        [sys.executable, *code] if isinstance(code, list) else [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_settings_refuse_to_start_without_a_secret_key(tmp_path):
    done = _python("import django; django.setup()", tmp_path, drop=("SECRET_KEY", "DEBUG"))
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr


def test_debug_is_off_unless_asked_for(tmp_path):
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    done = _python(code, tmp_path, drop=("DEBUG",), SECRET_KEY="x" * 60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_check_deploy_fails_on_a_development_key_and_the_default_typesense_key(tmp_path):
    import secrets

    args = ["manage.py", "check", "--deploy"]
    done = _python(
        args, tmp_path, drop=("TYPESENSE_API_KEY",), SECRET_KEY="offload-dev-insecure-" + "k" * 50, DEBUG="0"
    )
    assert done.returncode != 0
    assert "offload.E009" in done.stderr + done.stdout
    assert "offload.E010" in done.stderr + done.stdout
    good = _python(
        args, tmp_path, SECRET_KEY=secrets.token_urlsafe(50), DEBUG="0", TYPESENSE_API_KEY=secrets.token_urlsafe(20)
    )
    assert "offload.E009" not in good.stderr + good.stdout and "offload.E010" not in good.stderr + good.stdout


def test_make_run_sets_development_values_itself_and_keeps_its_key(tmp_path):
    from tests.support.servers import run_script

    run = run_script()
    env: dict[str, str] = {}
    notes = run.development_settings(env, tmp_path)
    assert env["DEBUG"] == "1" and env["SECRET_KEY"].startswith("offload-dev-insecure-")
    assert len(notes) == 2
    key_file = tmp_path / run.DEV_SECRET_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    again: dict[str, str] = {}
    run.development_settings(again, tmp_path)
    assert again["SECRET_KEY"] == env["SECRET_KEY"]
    given = {"SECRET_KEY": "real", "DEBUG": "0"}
    assert run.development_settings(given, tmp_path) == [] and given == {"SECRET_KEY": "real", "DEBUG": "0"}


def test_the_web_server_believes_forwarding_headers_only_from_trusted_proxies():
    from tests.support.servers import run_script

    run = run_script()
    assert "--no-proxy-headers" in run.web_server_args({}, 8000)
    trusting = run.web_server_args({"OFFLOAD_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16"}, 8000)
    assert trusting[trusting.index("--forwarded-allow-ips") + 1] == "10.0.0.1,10.1.0.0/16"
    assert run.web_server_args({}, 8000)[run.web_server_args({}, 8000).index("--ws-max-size") + 1] == "4096"


@pytest.mark.slow
def test_a_forged_x_forwarded_for_does_not_escape_the_anonymous_rate_limit(asgi_server):
    import requests

    server = asgi_server(OFFLOAD_RATE_API_ANON="3/60")
    codes = [
        requests.get(
            f"{server.url}/api/v1/jobs/", headers={"X-Forwarded-For": f"203.0.113.{n}"}, timeout=10
        ).status_code
        for n in range(6)
    ]
    assert codes[:3] == [401, 401, 401]
    assert set(codes[3:]) == {429}
