"""Offload settings. Every value that varies between deployments is read here, and only here."""

import ipaddress
import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# Where the embedded run keeps its SQLite file, media, logs and metrics (scripts/run.py agrees).
VAR_DIR = (BASE_DIR / (os.environ.get("OFFLOAD_VAR_DIR") or "var")).resolve()


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, not {raw!r}")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_list(name: str, default: list[str], sep: str = ",") -> list[str]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    return [part.strip() for part in raw.split(sep) if part.strip()]


def env_secret(name: str, default: str = "") -> str:
    """A secret: the variable NAME, else the file NAME_FILE names, else the systemd credential NAME.

    A file (0600, or a systemd credential: LoadCredential=NAME:/etc/offload/NAME) keeps the
    secret out of the environment, which every process of the service and its children see.
    """
    value = os.environ.get(name, "").strip()
    if value:
        return value
    path = os.environ.get(f"{name}_FILE", "").strip()
    credentials = os.environ.get("CREDENTIALS_DIRECTORY", "").strip()
    if not path and credentials and (Path(credentials) / name).is_file():
        path = str(Path(credentials) / name)
    if not path:
        return default
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ImproperlyConfigured(f"{name}: {path} is empty")
    return value


def with_password(url: str, password: str) -> str:
    """A redis:// URL with this password, unless it carries one already or none is given."""
    if not password:
        return url
    parts = urlsplit(url)
    if parts.password:
        return url
    user = quote(parts.username or "", safe="")
    netloc = f"{user}:{quote(password, safe='')}@{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit(parts._replace(netloc=netloc))


# --- Core -------------------------------------------------------------------

# Safe for production by default: DEBUG off, and no start without a real SECRET_KEY (django-q2
# signs the pickled tasks in its broker with it). The embedded run (scripts/run.py) sets
# development values itself, and says so loudly; `check --deploy` refuses them.
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set it (or SECRET_KEY_FILE) to a long random value (python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))'); `make run` sets a development key itself, and a command "
        "beside it reads it from var/run.env."
    )
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "offload.apps.OffloadAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_q",
    "channels",
    "offload",
    "offload.alerts",
    "search",
]

MIDDLEWARE = [
    "offload.web.request_id.RequestIdMiddleware",
    # Before anything asks for the host: probes and scrapes on the loopback pass ALLOWED_HOSTS.
    "offload.web.probe_host.LoopbackProbeHostMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Outside everything that can refuse a request, so that those refusals are JSON too.
    "offload.api.errors.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "offload.web.throttle.RateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# Passwords set through the admin (and createsuperuser) must not be short, common, numeric or the username.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ROOT_URLCONF = "config.urls"
# A CSRF refusal under /api/ (and of the probes) is JSON like every other API error.
CSRF_FAILURE_VIEW = "offload.api.errors.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The admin's durations, as offload/admin/formatting.py writes them.
            "libraries": {"offload_time": "offload.admin.timefilters"},
        },
    },
]

# --- Database ---------------------------------------------------------------

# Without persistent connections django-q2's ORM broker reconnects before every
# queue operation and the queue runs about ten times slower.
CONN_MAX_AGE = env_int("CONN_MAX_AGE", 600, minimum=0)

_database_url = env_str("DATABASE_URL", "")
if _database_url:
    _default_db = dj_database_url.parse(_database_url, conn_max_age=CONN_MAX_AGE, conn_health_checks=True)
    # The password may come from a file instead of the URL (DATABASE_PASSWORD_FILE).
    _default_db["PASSWORD"] = env_secret("DATABASE_PASSWORD", _default_db.get("PASSWORD", ""))
else:
    # Its folder is made when the app starts (offload/apps.py), never when settings load.
    _default_db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "offload.sqlite3",
        "CONN_MAX_AGE": CONN_MAX_AGE,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            # The web process and the workers write at once: WAL lets readers go on
            # during a write, IMMEDIATE takes the write lock at BEGIN (so a transaction
            # never fails on upgrading a read lock), and the timeout waits for it.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": (
                "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=30000;PRAGMA foreign_keys=ON;"
            ),
        },
    }
# The ASGI web process runs each request's sync code in a thread of its own, so a
# persistent connection per thread piles up until PostgreSQL refuses clients. The web
# process takes a small pool instead (DATABASE_POOL_SIZE, set for it alone: pooled
# connections do not survive the qcluster's fork).
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 0, minimum=0)
# Threads the one-port server (config/asgi.py) hands HTTP requests to; each keeps one
# persistent database connection, so this also bounds the web process's connections.
OFFLOAD_HTTP_THREADS = env_int("OFFLOAD_HTTP_THREADS", 8, minimum=1)
if DATABASE_POOL_SIZE and _default_db["ENGINE"].endswith("postgresql"):
    _default_db["CONN_MAX_AGE"] = 0
    _default_db.setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DATABASE_POOL_SIZE, "timeout": 10}
if _default_db["ENGINE"].endswith("postgresql"):
    _default_db.setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME", "test_offload")
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and sessions ---------------------------------------------

# Each instance's password: in its URL (redis://:password@host:port/0), or REDIS_PASSWORD /
# REDIS_CACHE_PASSWORD (or their _FILE forms); the cache's defaults to the state instance's.
REDIS_URL = with_password(env_str("REDIS_URL", "redis://127.0.0.1:6379/0"), env_secret("REDIS_PASSWORD"))
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "offload")
# The cache may live on an instance of its own (allkeys-lru); state stays on REDIS_URL (noeviction).
REDIS_CACHE_URL = with_password(
    env_str("REDIS_CACHE_URL", REDIS_URL), env_secret("REDIS_CACHE_PASSWORD", env_secret("REDIS_PASSWORD"))
)

CACHES = {
    "default": {
        # django-redis' backend, counting hits and misses for /metrics.
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            # The cache fails open: with Redis away a read is a miss, never a 500.
            "IGNORE_EXCEPTIONS": True,
            # Entries are signed with SECRET_KEY: a pickle written into Redis by anyone else is
            # refused unread (tokens, sessions and API answers live here).
            "SERIALIZER": "offload.lib.cache_serializer.SignedPickleSerializer",
        },
    },
}
# The same client on the state instance (noeviction): django-q2's cluster stats live here, so
# an eviction in the cache instance never makes live workers look dead.
CACHES["state"] = {**CACHES["default"], "BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "offload.cache"

# cached_db: a flushed or unreachable Redis logs nobody out.
# Its cache entries are named by a digest of the session key, never the key (offload/web/sessions.py).
SESSION_ENGINE = "offload.web.sessions"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py's default 5 s socket timeout equals channels-redis' 5 s blocking
            # pop, so an idle consumer's read would time out; give the pop room.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
            "prefix": f"{REDIS_KEY_PREFIX}:asgi",
            # Past this many undelivered messages a socket's channel drops new ones (100 by
            # default, which a burst of scan events overruns). A socket heals a dropped
            # event from the log, but each gap costs it a query.
            "capacity": 1000,
        },
    },
}

# --- Search -----------------------------------------------------------------

# One URL, or every node of a Typesense cluster as comma-separated URLs (docs/scaling.md).
TYPESENSE_URL = env_str("TYPESENSE_URL", "")
TYPESENSE_API_KEY = env_secret("TYPESENSE_API_KEY", "offload-dev-key")

# --- Websockets ---------------------------------------------------------------

OFFLOAD_WS_AUTH_TIMEOUT = env_float("OFFLOAD_WS_AUTH_TIMEOUT", 5.0)
OFFLOAD_WS_HEARTBEAT_SECONDS = env_float("OFFLOAD_WS_HEARTBEAT_SECONDS", 20.0)
OFFLOAD_WS_MAX_CONNECTIONS_PER_USER = env_int("OFFLOAD_WS_MAX_CONNECTIONS_PER_USER", 10, minimum=1)
# Job events are kept this long for clients resuming after a disconnect.
OFFLOAD_EVENT_RETENTION_HOURS = env_int("OFFLOAD_EVENT_RETENTION_HOURS", 24, minimum=1)
# Finished jobs are pruned by a schedule, a batch at a time: succeeded and cancelled ones after
# this many days, failed ones (what an operator investigates) after the second; 0 keeps them.
OFFLOAD_JOB_RETENTION_DAYS = env_int("OFFLOAD_JOB_RETENTION_DAYS", 30, minimum=0)
OFFLOAD_FAILED_JOB_RETENTION_DAYS = env_int("OFFLOAD_FAILED_JOB_RETENTION_DAYS", 90, minimum=0)
OFFLOAD_JOB_PRUNE_BATCH = env_int("OFFLOAD_JOB_PRUNE_BATCH", 1000, minimum=1)

# --- Files ------------------------------------------------------------------

OFFLOAD_LIBRARY_ROOTS = [
    Path(p).expanduser().resolve()
    for p in env_list("OFFLOAD_LIBRARY_ROOTS", [str(VAR_DIR / "media" / "library")], sep=":")
]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media" / "output"))).resolve()
MEDIA_URL = "/media/"
# Behind nginx: after the access check, /media/ answers with X-Accel-Redirect to this internal
# location (deploy/nginx/offload.conf) and nginx streams the file, ranges included. Empty: the
# app serves the file itself.
OFFLOAD_MEDIA_ACCEL_REDIRECT = env_str("OFFLOAD_MEDIA_ACCEL_REDIRECT", "")
STATIC_URL = "/static/"
# Static files are served from the apps' own folders, so no collectstatic step is needed;
# set STATIC_ROOT to collect them for a proxy instead.
STATIC_ROOT = env_str("STATIC_ROOT", "") or None
if STATIC_ROOT:
    # Collected for a proxy that caches them long (deploy/nginx/offload.conf): each file is
    # named by its content's hash (live.3f9a….js), so an upgrade's new file has a new name and
    # no browser keeps the old one. Without STATIC_ROOT nothing is collected: plain names.
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
WHITENOISE_USE_FINDERS = True

# ffmpeg and ffprobe: a path, or found on PATH (then imageio-ffmpeg's ffmpeg).
FFMPEG_BINARY = env_str("FFMPEG_BINARY", "")
FFPROBE_BINARY = env_str("FFPROBE_BINARY", "")
FFPROBE_TIMEOUT = env_float("FFPROBE_TIMEOUT", 30.0)
# Sprite sheets: a frame every N seconds; the interval grows past the tile limit.
OFFLOAD_SPRITE_INTERVAL = env_float("OFFLOAD_SPRITE_INTERVAL", 10.0)
OFFLOAD_SPRITE_MAX_TILES = env_int("OFFLOAD_SPRITE_MAX_TILES", 100, minimum=1)

# --- Jobs and django-q2 ------------------------------------------------------

# A job's worker is presumed lost when its heartbeat is older than this, and another worker
# takes the job over: it beats four times in this span, and the pages show "worker lost" once
# three beats were missed.
OFFLOAD_JOB_STALE_SECONDS = env_int("OFFLOAD_JOB_STALE_SECONDS", 20, minimum=2)
OFFLOAD_JOB_MAX_ATTEMPTS = env_int("OFFLOAD_JOB_MAX_ATTEMPTS", 3, minimum=1)
# A job that finds its kind's concurrency cap full goes back to the queue for this long.
OFFLOAD_QUEUE_CAP_WAIT_SECONDS = env_float("OFFLOAD_QUEUE_CAP_WAIT_SECONDS", 2.0)
OFFLOAD_IDEMPOTENCY_TTL_SECONDS = env_int("OFFLOAD_IDEMPOTENCY_TTL_SECONDS", 24 * 3600, minimum=1)
# The accept path's statement and the worker's transitions are prepared once per connection
# (PostgreSQL plans each once: offload/jobs/prepared.py). Turn
# off behind a pooler that cannot keep prepared statements (PgBouncer before 1.21 in
# transaction mode; see docs/scaling.md).
OFFLOAD_DB_PREPARED_STATEMENTS = env_bool("OFFLOAD_DB_PREPARED_STATEMENTS", True)

# Eight hours: a transcode may take 300 s plus 3 s per second of media, and a film runs two or three hours.
_q_timeout = env_int("OFFLOAD_Q_TIMEOUT", 8 * 3600, minimum=1)
Q_CLUSTER = {
    "name": env_str("OFFLOAD_Q_NAME", "offload"),
    "orm": "default",
    # The default lane's workers; OFFLOAD_Q_WORKERS is the older name of the same setting.
    "workers": env_int("OFFLOAD_LANE_DEFAULT_WORKERS", env_int("OFFLOAD_Q_WORKERS", 2, minimum=1), minimum=1),
    # The longest any task may run; job kinds pass their own, shorter, timeouts.
    "timeout": _q_timeout,
    # A task whose worker died is delivered again after `retry`; it must exceed the
    # timeout, or a slow but healthy task would be delivered twice.
    "retry": env_int("OFFLOAD_Q_RETRY", _q_timeout + 60, minimum=1),
    # Jobs count their own attempts (Job.attempts, OFFLOAD_JOB_MAX_ATTEMPTS) and the runner
    # records every failure it can catch; a task that still raises (the database away
    # during claim or finish) must come back after `retry`, not vanish: 0 = no cap here.
    "max_attempts": 0,
    "catch_up": False,
    # The Job table keeps results; django-q2's pruning of successes costs a
    # SELECT ... FOR UPDATE per task.
    "save_limit": -1,
    "ack_failures": False,
    "poll": env_float("OFFLOAD_Q_POLL", 0.05),
    "bulk": 1,
    # Tasks a cluster takes ahead of its free workers (django-q2 defaults to workers²). A task
    # taken early is out of the people queue's reach (offload/jobs/lanes.py): one is enough to
    # hide the poll interval.
    "queue_limit": env_int("OFFLOAD_Q_PREFETCH", 1, minimum=1),
    "label": "Task queue",
    "cache": "state",
}
# The broker: "orm" (the default database; a job and its queue row commit together) or
# "redis" (REDIS_URL; more throughput, pushed after commit, see docs/scaling.md).
OFFLOAD_Q_BROKER = env_str("OFFLOAD_Q_BROKER", "orm")
if OFFLOAD_Q_BROKER == "redis":
    del Q_CLUSTER["orm"]
    Q_CLUSTER["redis"] = REDIS_URL
elif OFFLOAD_Q_BROKER != "orm":
    raise ImproperlyConfigured(f"OFFLOAD_Q_BROKER must be orm or redis, not {OFFLOAD_Q_BROKER!r}")
# django-q2's brokers, saving each cluster's lane beside its stats (offload/jobs/lanes.py); the
# ORM one also takes the tasks people asked for before a pipeline's backlog
# (offload/jobs/lanes.py), where the Redis broker keeps plain queue order.
Q_CLUSTER["broker_class"] = f"offload.jobs.lanes.Lane{'Redis' if OFFLOAD_Q_BROKER == 'redis' else 'ORM'}Broker"

# --- Worker lanes --------------------------------------------------------------

# The worker lanes, declared here once. A lane is a django-q2 cluster whose name is its queue
# (OFFLOAD_<LANE>_Q_NAME, the lane's own name by default; the default lane is Q_CLUSTER, named
# by OFFLOAD_Q_NAME), and each job kind names its lane in its registration
# (offload/jobs/kinds.py). `make run` starts a cluster per lane, /healthz/ready and /metrics
# report each, and tests hold deploy/systemd/offload.target, deploy/Procfile and the docs to
# this list: a new lane is one entry here, its options beside Q_CLUSTER's.
_search_workers = env_int("OFFLOAD_LANE_SEARCH_WORKERS", env_int("OFFLOAD_SEARCH_Q_WORKERS", 2, minimum=1), minimum=1)
_LANE_CLUSTERS = {
    # Long CPU work (transcodes) on workers of its own, so a film's transcode never holds back a probe.
    "media": {
        "workers": env_int("OFFLOAD_LANE_MEDIA_WORKERS", 2, minimum=1),
        "poll": env_float("OFFLOAD_MEDIA_Q_POLL", 0.2),
    },
    # Index writes, so a sync never waits behind a long transcode.
    "search": {
        "workers": _search_workers,
        # Index syncs have no people queue; the lane keeps django-q2's own prefetch.
        "queue_limit": _search_workers**2,
        "timeout": 120,
        "retry": 180,
        # A sync that failed is retried from the outbox, not by django-q2.
        "max_attempts": 1,
        "poll": env_float("OFFLOAD_SEARCH_Q_POLL", 0.05),
    },
    # Deliveries to people's endpoints (offload/alerts/), so a slow endpoint never holds back a probe.
    "notify": {
        "workers": env_int("OFFLOAD_LANE_NOTIFY_WORKERS", 2, minimum=1),
        # An attempt is bounded by OFFLOAD_NOTIFY_TIMEOUT; a worker killed mid-delivery has its
        # task delivered again after `retry`, and the outbox sweep catches anything else.
        "timeout": 60,
        "retry": 120,
        "max_attempts": 1,
        "poll": env_float("OFFLOAD_NOTIFY_Q_POLL", 0.05),
    },
}
# lane → its cluster's name (its queue), the default lane first.
OFFLOAD_LANES = {
    "default": Q_CLUSTER["name"],
    **{lane: env_str(f"OFFLOAD_{lane.upper()}_Q_NAME", lane) for lane in _LANE_CLUSTERS},
}
Q_CLUSTER["ALT_CLUSTERS"] = {OFFLOAD_LANES[lane]: options for lane, options in _LANE_CLUSTERS.items()}
MEDIA_Q_CLUSTER = OFFLOAD_LANES["media"]
SEARCH_Q_CLUSTER = OFFLOAD_LANES["search"]
NOTIFY_Q_CLUSTER = OFFLOAD_LANES["notify"]

# --- Search sync -------------------------------------------------------------

SEARCH_SYNC_TASK_TIMEOUT = 60
# The alias searches use; collections behind it are named <alias>_v<milliseconds>.
SEARCH_ALIAS = env_str("OFFLOAD_SEARCH_ALIAS", "media")
SEARCH_READ_TIMEOUT = env_float("OFFLOAD_SEARCH_READ_TIMEOUT", 0.5)
# After a failed read, searches answer from the database for this long without asking.
SEARCH_READ_PAUSE_SECONDS = env_float("OFFLOAD_SEARCH_READ_PAUSE", 2.0)
SEARCH_WRITE_TIMEOUT = env_float("OFFLOAD_SEARCH_WRITE_TIMEOUT", 10.0)
SEARCH_SYNC_BATCH = env_int("OFFLOAD_SEARCH_SYNC_BATCH", 250, minimum=1)
SEARCH_SYNC_LEASE_SECONDS = 60
SEARCH_SYNC_BUDGET_SECONDS = 30.0
SEARCH_SYNC_RETRY_SECONDS = env_float("OFFLOAD_SEARCH_SYNC_RETRY", 2.0)
SEARCH_SYNC_RETRY_MAX_SECONDS = 30.0
# /healthz/ready says search is degraded when a write has waited longer than this.
SEARCH_SYNC_STALE_SECONDS = env_int("OFFLOAD_SEARCH_SYNC_STALE_SECONDS", 60, minimum=1)
SEARCH_REINDEX_BATCH = env_int("OFFLOAD_SEARCH_REINDEX_BATCH", 1000, minimum=1)
# A build whose heartbeat is older than this lost its process; the next reindex takes over.
SEARCH_REINDEX_STALE_SECONDS = 300
# Seconds to cache identical search answers (0: off); see search/cache.py for the trade-off.
SEARCH_CACHE_SECONDS = env_int("OFFLOAD_SEARCH_CACHE_SECONDS", 0, minimum=0)
SEARCH_RECONCILE_MINUTES = env_int("OFFLOAD_SEARCH_RECONCILE_MINUTES", 15, minimum=1)

# --- Enrichment ---------------------------------------------------------------

# Providers run in this order; where two set the same field, the later one wins.
OFFLOAD_ENRICH_PROVIDERS = env_list("OFFLOAD_ENRICH_PROVIDERS", ["filename", "tags", "nfo", "tmdb"])
# NFO sidecars larger than this are refused unread.
OFFLOAD_NFO_MAX_BYTES = env_int("OFFLOAD_NFO_MAX_BYTES", 1024 * 1024, minimum=1024)
# The TMDb provider runs only with a key (a v3 API key, or a v4 read access token).
TMDB_API_KEY = env_secret("TMDB_API_KEY")
TMDB_BASE_URL = env_str("TMDB_BASE_URL", "https://api.themoviedb.org/3").rstrip("/")
TMDB_LANGUAGE = env_str("TMDB_LANGUAGE", "en-US")
# One limit for every worker on every host, kept in Redis.
TMDB_RATE_LIMIT = env_int("TMDB_RATE_LIMIT", 40, minimum=1)
TMDB_RATE_WINDOW = env_float("TMDB_RATE_WINDOW", 10.0)
# A worker waits this long at most for a slot, then the job is retried later.
TMDB_RATE_MAX_WAIT = env_float("TMDB_RATE_MAX_WAIT", 15.0)
TMDB_CONNECT_TIMEOUT = env_float("TMDB_CONNECT_TIMEOUT", 3.05)
TMDB_READ_TIMEOUT = env_float("TMDB_READ_TIMEOUT", 10.0)
TMDB_CACHE_DETAILS_SECONDS = env_int("TMDB_CACHE_DETAILS_SECONDS", 24 * 3600, minimum=0)
TMDB_CACHE_SEARCH_SECONDS = env_int("TMDB_CACHE_SEARCH_SECONDS", 15 * 60, minimum=0)
TMDB_BREAKER_FAILURES = env_int("TMDB_BREAKER_FAILURES", 5, minimum=1)
TMDB_BREAKER_COOLDOWN = env_float("TMDB_BREAKER_COOLDOWN", 30.0)

# --- API --------------------------------------------------------------------

# Rate limits, "count/seconds", exact across processes (offload/lib/limits.py, offload/ratelimit.py).
OFFLOAD_RATE_LIMITS = {
    "api_user": env_str("OFFLOAD_RATE_API_USER", "300/60"),
    "api_anon": env_str("OFFLOAD_RATE_API_ANON", "60/60"),
    "jobs_user": env_str("OFFLOAD_RATE_JOBS_USER", "60/60"),
    "login": env_str("OFFLOAD_RATE_LOGIN", "10/60"),
    "ws_connect": env_str("OFFLOAD_RATE_WS_CONNECT", "30/60"),
    # Websocket connections per client address before they authenticate.
    "ws_anon": env_str("OFFLOAD_RATE_WS_ANON", "60/60"),
    # Messages one websocket may send (counted per socket, in the web process).
    "ws_message": env_str("OFFLOAD_RATE_WS_MESSAGE", "60/10"),
}
# With Redis away these refuse (the others let requests through).
OFFLOAD_RATE_LIMITS_FAIL_CLOSED = env_list("OFFLOAD_RATE_LIMITS_FAIL_CLOSED", ["login"])
# Proxies whose X-Forwarded-For is believed, as addresses or CIDR networks.
OFFLOAD_TRUSTED_PROXIES = env_list("OFFLOAD_TRUSTED_PROXIES", [])

# Whether users other than staff may create libraries (staff grant access otherwise).
OFFLOAD_USERS_CREATE_LIBRARIES = env_bool("OFFLOAD_USERS_CREATE_LIBRARIES", False)

# GET answers are cached per user in Redis and invalidated on commit (offload/api/caching.py).
OFFLOAD_API_CACHE = env_bool("OFFLOAD_API_CACHE", True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "offload.api.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "offload.api.pagination.PageNumbers",
    "PAGE_SIZE": 50,
    # drf-spectacular's AutoSchema, plus the error answers each operation can give.
    "DEFAULT_SCHEMA_CLASS": "offload.api.schema.OffloadAutoSchema",
    "EXCEPTION_HANDLER": "offload.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "offload.api.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Offload API",
    "DESCRIPTION": "Media library operations offloaded to background workers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Bodies are documented as JSON, the API's format: in a form, `null` has no spelling.
    "PARSER_WHITELIST": ["offload.api.parsers.SafeJSONParser"],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "offload.models.JobStatus",
        "MediaStatusEnum": "offload.models.MediaStatus",
    },
}

# --- Production security -----------------------------------------------------

# With DEBUG off, cookies go over HTTPS only and browsers are told to stay on HTTPS (set
# these to 0 to serve the admin over plain HTTP). Redirecting plain HTTP to HTTPS is the
# TLS proxy's job: the app itself also answers probes, scrapes and internal clients on
# plain HTTP, hence W008 is silenced; SECURE_SSL_REDIRECT=1 makes the app redirect too.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 3600, minimum=0)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz/", r"^metrics$"]
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    # Only behind a proxy that sets X-Forwarded-Proto itself and never passes a client's on.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS for subdomains and the browsers' preload list bind the whole domain: its owner opts
# in (W005, W021 are silenced until then).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W008", "security.W005", "security.W021"]

# --- Notifications to people's endpoints (offload/alerts/) -------------------

# Loopback and private addresses are refused as endpoint targets unless this is on (a
# self-hosted ntfy on the LAN); link-local and cloud metadata addresses are always refused.
OFFLOAD_NOTIFY_ALLOW_PRIVATE = env_bool("OFFLOAD_NOTIFY_ALLOW_PRIVATE", False)
# A PEM file of CAs trusted, besides the system's, for the SMTP servers email endpoints name
# (a LAN mail server with a private CA). Certificates are always checked, against the name.
OFFLOAD_NOTIFY_SMTP_CA_FILE = env_str("OFFLOAD_NOTIFY_SMTP_CA_FILE", "")
# Seconds one delivery attempt may take, connect and answer together.
OFFLOAD_NOTIFY_TIMEOUT = env_float("OFFLOAD_NOTIFY_TIMEOUT", 10.0)
# Per user and hour: emails, and pushes (ntfy, Gotify, Discord); past them a notification is
# recorded as limited. Webhooks (scripts) are not limited.
OFFLOAD_NOTIFY_EMAILS_PER_HOUR = env_int("OFFLOAD_NOTIFY_EMAILS_PER_HOUR", 20, minimum=0)
OFFLOAD_NOTIFY_PUSHES_PER_HOUR = env_int("OFFLOAD_NOTIFY_PUSHES_PER_HOUR", 50, minimum=0)
# The same endpoint, event type and target within this many seconds collapse into one.
OFFLOAD_NOTIFY_DEDUPE_SECONDS = env_int("OFFLOAD_NOTIFY_DEDUPE_SECONDS", 300, minimum=0)
# Where links in notifications point (the job's admin page): this site's public address.
OFFLOAD_PUBLIC_URL = env_str("OFFLOAD_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# Email notifications go through Django's SMTP backend with these settings.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = int(OFFLOAD_NOTIFY_TIMEOUT)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "offload@localhost")

# --- Metrics and health --------------------------------------------------------

# /metrics answers clients at these addresses (or networks), and anyone sending
# `Authorization: Bearer <METRICS_TOKEN>` when that is set; others get 403.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
OFFLOAD_METRICS_ALLOWED_IPS = env_list("OFFLOAD_METRICS_ALLOWED_IPS", ["127.0.0.0/8", "::1"])
for _network in OFFLOAD_METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"OFFLOAD_METRICS_ALLOWED_IPS: {_network!r} is no IP address or network") from None
# Every process (web, workers, commands) writes its samples to files in this folder and a
# scrape sums them (prometheus_client's multiprocess mode). prometheus_client reads the
# variable once, when first imported; the settings load before anything imports it, so
# setting it here reaches every process and their children. `make run` empties the folder
# before it starts them; a deployment does the same when it starts a host's processes.
# The folder itself is made when the app starts (offload/apps.py), never when settings load.
PROMETHEUS_MULTIPROC_DIR = Path(env_str("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))).resolve()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)
# A gauge per process would repeat once per pid; `manage.py migrate --check` answers this.
PROMETHEUS_EXPORT_MIGRATIONS = False
# Each /healthz/ready check answers within this many seconds or is reported as timed out.
HEALTH_CHECK_TIMEOUT = env_float("OFFLOAD_HEALTH_CHECK_TIMEOUT", 1.0)
# The admin's operations dashboard is recomputed at most this often.
OFFLOAD_DASHBOARD_CACHE_SECONDS = env_int("OFFLOAD_DASHBOARD_CACHE_SECONDS", 5, minimum=0)

# --- Misc -------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# One way to write a time everywhere in the admin: ISO-like, with the zone ("2026-05-01 08:55:03 UTC").
FORMAT_MODULE_PATH = ["config.formats"]
USE_I18N = True
USE_TZ = True

# plain: text lines; json: one JSON object per line (offload/logs.py). Either way a line
# carries the request id in the web and the job id and kind in a worker.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "offload.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"},
        "json": {"()": "offload.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-q2 logs as "django-q".
    "loggers": {"django-q": {"level": env_str("Q_LOG_LEVEL", "WARNING")}},
}
if LOG_FORMAT == "json":
    # The servers' own lines too: uvicorn configures its loggers before it loads the app, and
    # this configuration (applied as the app loads) takes them over. gunicorn's master logs
    # before any app loads: deploy/gunicorn.conf.py does the same for it.
    for _server_logger in ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access"):
        LOGGING["loggers"][_server_logger] = {"handlers": ["console"], "propagate": False}
