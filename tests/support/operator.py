"""An operator's host in a folder: docs/deploy.md's steps, and the shipped units run as systemd would.

The host's paths (/opt/offload, /etc/offload, /var/lib/offload, /srv/…) and ports (8000,
8001, 6379, 6380, 8108, 80, 443) live under one folder and on free ports of this machine, so
the test never touches the machine's own; everything else is the shipped files as they are.
A small runner reads each unit's User=, Group=, UMask=, EnvironmentFile=, Environment=,
WorkingDirectory= and ExecStartPre=/ExecStart= and runs the commands under them.
"""

import contextlib
import hashlib
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.support.cluster import BASE_DIR
from tests.support.services import free_port

DEPLOY = BASE_DIR / "deploy"
DOCS = BASE_DIR / "docs" / "deploy.md"
SERVER_NAME = "offload.example.org"


def production_venv() -> Path:
    """docs/deploy.md's step 3 with Debian's python3: a virtualenv of requirements.txt alone, made once per lock.

    Not the test run's own: that one may live where the offload user cannot read (a pyenv under
    /root), and it holds the development tools a deployment does not.
    """
    lock = (BASE_DIR / "requirements.txt").read_bytes()
    venv = BASE_DIR / "var" / f"operator-venv-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "--require-hashes",
             "-r", str(BASE_DIR / "requirements.txt")],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        (venv / ".installed").touch()
    return venv


def ensure_system_user(name: str) -> None:
    """docs/deploy.md's `useradd --system --user-group …`, once per machine."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--home-dir", f"/var/lib/{name}", "--shell", "/usr/sbin/nologin",
             name],
            check=True, capture_output=True,
        )  # fmt: skip


def heredoc(command_start: str) -> str:
    """The text docs/deploy.md feeds to the shell command that starts with `command_start`."""
    text = DOCS.read_text()
    start = text.index(command_start)
    body_start = text.index("\n", start) + 1
    return text[body_start : text.index("\nEOF\n", body_start)] + "\n"


def env_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile=: NAME=value lines; comments and blank lines skipped."""
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the process, its group and every descendant, wherever they went.

    A process manager (honcho) starts each of its children in a session of its own: killing
    its group alone leaves them running, orphaned, after the test.
    """
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    proc.wait(10)


@dataclass
class Unit:
    name: str
    settings: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, text: str, name: str) -> "Unit":
        unit = cls(name)
        for line in text.splitlines():
            if "=" in line and not line.startswith(("#", "[")):
                key, value = line.split("=", 1)
                unit.settings.setdefault(key, []).append(value)
        return unit

    def one(self, key: str, default: str = "") -> str:
        return self.settings.get(key, [default])[-1]


class Host:
    """One folder that stands for the host's file system, and a port for each of its services."""

    def __init__(self) -> None:
        # Not pytest's tmp_path: its parents are root's alone, and the services run as their users.
        self.venv = production_venv()
        self.root = Path(tempfile.mkdtemp(prefix="offload-host-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.ports = {name: free_port() for name in ("web", "ws", "state", "cache", "typesense", "peering", "plain",
                                                     "tls", "prometheus")}  # fmt: skip
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = self.root / "log"
        self.log_dir.mkdir()

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def localize(self, text: str) -> str:
        """A shipped file's paths and ports, moved into this host."""
        p = self.ports
        for shipped, here in (
            ("/opt/offload/.venv/bin/", f"{self.venv}/bin/"),
            ("/opt/offload", str(BASE_DIR)),
            ("/usr/local/bin/", f"{self.root}/usr/local/bin/"),
            ("/etc/", f"{self.root}/etc/"),
            ("/var/lib/", f"{self.root}/var/lib/"),
            ("/var/log/", f"{self.root}/var/log/"),
            ("/srv/", f"{self.root}/srv/"),
            ("127.0.0.1:8000", f"127.0.0.1:{p['web']}"),
            ("127.0.0.1:8001", f"127.0.0.1:{p['ws']}"),
            ("--port 8001", f"--port {p['ws']}"),
            ("127.0.0.1:6379", f"127.0.0.1:{p['state']}"),
            ("127.0.0.1:6380", f"127.0.0.1:{p['cache']}"),
            ("port 6379\n", f"port {p['state']}\n"),
            ("port 6380\n", f"port {p['cache']}\n"),
            ("127.0.0.1:8108", f"127.0.0.1:{p['typesense']}"),
            ("api-port = 8108", f"api-port = {p['typesense']}"),
            ("peering-port = 8107", f"peering-port = {p['peering']}"),
            ("listen 80;", f"listen 127.0.0.1:{p['plain']};"),
            ("    listen [::]:80;\n", ""),
            ("listen 443 ssl;", f"listen 127.0.0.1:{p['tls']} ssl;"),
            ("    listen [::]:443 ssl;\n", ""),
        ):
            text = text.replace(shipped, here)
        return text

    def folder(self, absolute: str, owner: str = "root", group: str = "root", mode: int = 0o755) -> Path:
        """`install -d -o owner -g group -m mode`."""
        path = self.path(absolute)
        path.mkdir(parents=True, exist_ok=True)
        shutil.chown(path, owner, group)
        os.chmod(path, mode)
        return path

    def install(self, text: str, absolute: str, owner: str, group: str, mode: int) -> Path:
        """`install -o owner -g group -m mode` of a file with this text."""
        path = self.path(absolute)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        shutil.chown(path, owner, group)
        os.chmod(path, mode)
        return path

    # --- Units -------------------------------------------------------------------

    def unit(self, name: str, instance: str = "") -> Unit:
        """A shipped unit file, localized; a template (name@.service) as its instance name@instance.service."""
        text = self.localize((DEPLOY / "systemd" / name).read_text()).replace("%i", instance)
        return Unit.read(text, name.replace("@.", f"@{instance}.") if instance else name)

    def _environment(self, unit: Unit) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for path in unit.settings.get("EnvironmentFile", []):
            env.update(env_file(Path(path).read_text()))
        for assignment in unit.settings.get("Environment", []):
            key, value = assignment.split("=", 1)
            env[key] = value
        user = unit.one("User", "root")
        env.update(USER=user, LOGNAME=user, HOME=pwd.getpwnam(user).pw_dir)
        return env

    def _state_directories(self, unit: Unit) -> None:
        """StateDirectory= and LogsDirectory=: made and given to the unit's user, as systemd does."""
        user, group = unit.one("User", "root"), unit.one("Group", "root")
        for key, base in (("StateDirectory", "/var/lib/"), ("LogsDirectory", "/var/log/")):
            for name in unit.settings.get(key, []):
                self.folder(base + name, user, group, 0o755)

    def _command(self, unit: Unit, line: str, env: dict[str, str]) -> list[str]:
        line = line.lstrip("-@")
        expanded = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), line)
        return shlex.split(expanded)

    def _popen(self, unit: Unit, args: list[str], env: dict[str, str], log) -> subprocess.Popen:
        return subprocess.Popen(
            args,
            cwd=unit.one("WorkingDirectory", "/"),
            env=env,
            user=unit.one("User", "root"),
            group=unit.one("Group", "root"),
            extra_groups=[],
            umask=int(unit.one("UMask", "0022"), 8),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run_oneshot(self, name: str) -> None:
        """A Type=oneshot unit: each ExecStartPre=, then each ExecStart=, to its end; AssertionError on a failure."""
        unit = self.unit(name)
        self._state_directories(unit)
        env = self._environment(unit)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            for line in unit.settings.get("ExecStartPre", []) + unit.settings.get("ExecStart", []):
                done = self._popen(unit, self._command(unit, line, env), env, log)
                code = done.wait(600)
                assert code == 0, f"{name}: {line} exited {code}:\n{self.log(name)}"

    def start(self, name: str, instance: str = "") -> subprocess.Popen:
        """A Type=simple unit's ExecStart=, left running."""
        unit = self.unit(name, instance)
        self._state_directories(unit)
        env = self._environment(unit)
        (line,) = unit.settings["ExecStart"]
        with open(self.log_dir / f"{unit.name}.log", "ab") as log:
            proc = self._popen(unit, self._command(unit, line, env), env, log)
        self.processes.append((unit.name, proc))
        return proc

    def spawn(self, name: str, args: list[str], **options) -> subprocess.Popen:
        """A service the test starts itself (Redis, nginx, Prometheus), logging beside the units."""
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **options)
        self.processes.append((name, proc))
        return proc

    def stop(self, name: str) -> None:
        for running, proc in self.processes:
            if running == name and proc.poll() is None:
                kill_tree(proc)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name, _ in self.processes)

    def survivors(self) -> list[str]:
        """Command lines of running processes started from this host's virtualenv or root."""
        marks = (str(self.venv), str(self.root))
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if any(mark in cmdline for mark in marks):
                found.append(cmdline)
        return found

    def teardown(self) -> None:
        for _, proc in reversed(self.processes):
            kill_tree(proc)
        shutil.rmtree(self.root, ignore_errors=True)
