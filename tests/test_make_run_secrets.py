"""`make run`'s secrets are its user's alone: var/ and the database closed, random service secrets kept 0600."""

import os

from tests.support.servers import run_script


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_an_earlier_runs_open_var_folder_and_database_are_closed(tmp_path):
    run = run_script()
    var_dir = tmp_path / "var"
    var_dir.mkdir(mode=0o755)
    for name in ("offload.sqlite3", "offload.sqlite3-wal"):
        (var_dir / name).write_text("tokens and sessions")
        os.chmod(var_dir / name, 0o644)
    umask = os.umask(0o022)
    try:
        run.make_private(var_dir)
        # What the run and its children create from now on is private too.
        assert os.umask(0o022) == 0o077
    finally:
        os.umask(umask)
    assert mode(var_dir) == 0o700
    assert mode(var_dir / "offload.sqlite3") == mode(var_dir / "offload.sqlite3-wal") == 0o600


def test_a_service_secret_is_random_kept_and_private(tmp_path):
    run = run_script()
    first = run.kept_secret(tmp_path / "typesense-api-key")
    assert len(first) >= 32 and first != "offload-dev-key"
    assert mode(tmp_path / "typesense-api-key") == 0o600
    assert run.kept_secret(tmp_path / "typesense-api-key") == first
    assert run.kept_secret(tmp_path / "redis-password") != first
    # A file an earlier version left readable is closed.
    os.chmod(tmp_path / "typesense-api-key", 0o644)
    run.kept_secret(tmp_path / "typesense-api-key")
    assert mode(tmp_path / "typesense-api-key") == 0o600


def test_the_run_env_is_private_and_quoted_for_a_shell(tmp_path):
    run = run_script()
    env = {"SECRET_KEY": "a b'c", "REDIS_URL": "redis://:pw@127.0.0.1:6390/0", "HOME": "/x"}
    path = run.write_run_env(env, tmp_path)
    assert mode(path) == 0o600
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["REDIS_URL=redis://:pw@127.0.0.1:6390/0", "SECRET_KEY='a b'\"'\"'c'"]
