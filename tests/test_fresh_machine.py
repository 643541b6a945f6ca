"""A fresh machine: make run gets python3-venv, make test gets PostgreSQL and Redis (stubbed system tools)."""

import shutil
import subprocess
from pathlib import Path

from tests.support.cluster import BASE_DIR

SCRIPTS = BASE_DIR / "scripts"
# The real tools the scripts need besides the ones each test stubs.
TOOLS = ("bash", "ls", "sort", "tail", "seq", "sleep", "cat", "mv", "chown", "dirname", "touch", "grep")


def machine(tmp_path: Path, stubs: dict[str, str], root: bool = True) -> dict[str, str]:
    """A PATH holding the basic tools, the stubs given (shell bodies) and an `id` saying who we are."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in TOOLS:
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    stubs = {"id": f"echo {0 if root else 1000}", **stubs}
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path), "LOG": str(tmp_path / "calls.log")}


def run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", str(SCRIPTS / script), *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def calls(tmp_path: Path) -> str:
    log = tmp_path / "calls.log"
    return log.read_text() if log.exists() else ""


def test_make_run_installs_python3_venv_where_it_is_missing(tmp_path):
    env = machine(tmp_path, {"python3": "exit 1", "apt-get": 'echo "apt-get $*" >> "$LOG"'})
    done = run("ensure_system_packages.sh", env, "--venv")
    assert done.returncode == 0, done.stderr
    assert "apt-get install -y -qq python3-venv" in calls(tmp_path)
    # Only what the virtualenv needs, before it is made.
    assert "ffmpeg" not in calls(tmp_path)


def test_python3_venv_present_installs_nothing(tmp_path):
    env = machine(tmp_path, {"python3": "exit 0", "apt-get": 'echo "apt-get $*" >> "$LOG"'})
    assert run("ensure_system_packages.sh", env, "--venv").returncode == 0
    assert calls(tmp_path) == ""


def test_without_root_it_says_what_to_install(tmp_path):
    env = machine(tmp_path, {"python3": "exit 1", "apt-get": "exit 99"}, root=False)
    done = run("ensure_system_packages.sh", env, "--venv")
    assert done.returncode == 1
    assert "Please install: python3-venv" in done.stderr


def test_the_makefile_checks_for_python3_venv_before_it_makes_the_virtualenv():
    makefile = (BASE_DIR / "Makefile").read_text()
    assert "bash scripts/ensure_system_packages.sh --venv && $(PYTHON) -m venv $(VENV)" in makefile


def test_make_test_installs_and_starts_postgresql_where_it_is_missing(tmp_path):
    etc = tmp_path / "etc-postgresql"
    # What Debian's package leaves: a cluster folder with its pg_hba.conf, and pg_ctlcluster.
    install = f"""echo "apt-get $*" >> "$LOG"
if [ "$1" = install ]; then
  mkdir -p {etc}/15/main && echo "host all all 127.0.0.1/32 scram-sha-256" > {etc}/15/main/pg_hba.conf
  printf '#!/bin/bash\\necho "pg_ctlcluster $*" >> "$LOG"; touch {tmp_path}/pg-up\\n' > {tmp_path}/bin/pg_ctlcluster
  chmod +x {tmp_path}/bin/pg_ctlcluster
fi"""
    env = machine(
        tmp_path,
        {
            "apt-get": install,
            "mkdir": f'exec {shutil.which("mkdir")} "$@"',
            "chmod": f'exec {shutil.which("chmod")} "$@"',
            "chown": "exit 0",
            "pg_isready": f"[ -e {tmp_path}/pg-up ]",
            "redis-cli": "exit 0",
        },
    )
    env.update(PG_ETC=str(etc))
    done = run("ensure_services.sh", env)
    assert done.returncode == 0, done.stdout + done.stderr
    log = calls(tmp_path)
    assert "apt-get install -y -qq postgresql" in log
    assert "pg_ctlcluster --skip-systemctl-redirect 15 main start" in log
    # The tests connect as postgres over loopback without a password.
    assert (etc / "15" / "main" / "pg_hba.conf").read_text().splitlines()[0] == "host all postgres 127.0.0.1/32 trust"


def test_make_test_starts_a_private_redis_from_the_virtualenv_without_root(tmp_path):
    venv_bin = tmp_path / "venv-bin"
    venv_bin.mkdir()
    (venv_bin / "redis-server").write_text(
        f'#!/bin/bash\necho "redis-server $*" >> "$LOG"; touch {tmp_path}/redis-up\n'
    )
    (venv_bin / "redis-cli").write_text(f"#!/bin/bash\n[ -e {tmp_path}/redis-up ]\n")
    for binary in venv_bin.iterdir():
        binary.chmod(0o755)
    env = machine(tmp_path, {"pg_isready": "exit 0", "apt-get": "exit 99"}, root=False)
    env.update(VENV_BIN=str(venv_bin))
    done = run("ensure_services.sh", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "redis-server --daemonize yes --bind 127.0.0.1 --port 6379" in calls(tmp_path)
    assert "apt-get" not in calls(tmp_path)


def test_no_postgresql_and_no_root_says_what_to_do(tmp_path):
    env = machine(tmp_path, {"pg_isready": "exit 2"}, root=False)
    done = run("ensure_services.sh", env)
    assert done.returncode == 1
    assert "PostgreSQL is not installed" in done.stderr
