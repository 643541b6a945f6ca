"""System checks: django-q2 settings that would lose or duplicate work are refused at startup."""

import ssl
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register

from offload.handlers.enrich.providers import PROVIDERS
from offload.jobs import kinds
from offload.lib.limits import parse_rate
from offload.lib.outbound import tls_context

RETRY_MARGIN_SECONDS = 5


def check_rate_limits(app_configs=None, **kwargs) -> list:
    errors = []
    for name, text in settings.OFFLOAD_RATE_LIMITS.items():
        try:
            count, seconds = parse_rate(text)
            if count < 1 or seconds <= 0:
                raise ValueError
        except ValueError:
            errors.append(
                Error(f"Rate limit {name}={text!r} must look like '300/60' (count/seconds).", id="offload.E006")
            )
    for kind in kinds.all_kinds():
        if kind.rate_limit and kind.rate_limit not in settings.OFFLOAD_RATE_LIMITS:
            errors.append(
                Error(
                    f"Job kind {kind.name} counts against rate limit {kind.rate_limit!r}, which is not configured.",
                    hint="Add it to OFFLOAD_RATE_LIMITS, or register the kind with a configured scope.",
                    id="offload.E008",
                )
            )
    return errors


def check_enrich_providers(app_configs=None, **kwargs) -> list:
    unknown = [name for name in settings.OFFLOAD_ENRICH_PROVIDERS if name not in PROVIDERS]
    if not unknown:
        return []
    return [
        Error(
            f"OFFLOAD_ENRICH_PROVIDERS names unknown providers: {', '.join(unknown)}.",
            hint=f"Choose from {', '.join(PROVIDERS)}.",
            id="offload.E007",
        )
    ]


def check_notify_ca_file(app_configs=None, **kwargs) -> list:
    """OFFLOAD_NOTIFY_SMTP_CA_FILE, when set, is read as CAs: a wrong path fails at startup, not at each email."""
    path = settings.OFFLOAD_NOTIFY_SMTP_CA_FILE
    if not path:
        return []
    try:
        tls_context(path)
    except (OSError, ssl.SSLError) as exc:
        return [
            Error(
                f"OFFLOAD_NOTIFY_SMTP_CA_FILE={path!r} cannot be read as CA certificates: {exc}.",
                hint="Name a PEM file of the CA certificates to trust, or leave it unset.",
                id="offload.E015",
            )
        ]
    return []


def check_q_cluster(app_configs=None, **kwargs) -> list:
    errors = []
    q = settings.Q_CLUSTER
    timeout, retry = q.get("timeout"), q.get("retry")
    if not isinstance(timeout, int) or timeout <= 0:
        errors.append(Error("Q_CLUSTER['timeout'] must be a positive number of seconds.", id="offload.E001"))
    elif not isinstance(retry, int) or retry < timeout + RETRY_MARGIN_SECONDS:
        errors.append(
            Error(
                f"Q_CLUSTER['retry'] ({retry}) must exceed 'timeout' ({timeout}) by at least "
                f"{RETRY_MARGIN_SECONDS} s, or a task still running is delivered a second time.",
                hint="Set OFFLOAD_Q_RETRY above OFFLOAD_Q_TIMEOUT.",
                id="offload.E002",
            )
        )
    if "max_attempts" not in q:
        errors.append(Error("Q_CLUSTER['max_attempts'] must be set explicitly.", id="offload.E003"))
    if q.get("catch_up", True):
        errors.append(
            Error(
                "Q_CLUSTER['catch_up'] must be False: a stopped cluster would replay every missed schedule.",
                id="offload.E004",
            )
        )
    # With the ORM broker the queue row commits with its job; another broker (Redis) is
    # pushed to after the commit instead (offload.jobs.queue.push).
    if "orm" in q and q["orm"] != "default":
        errors.append(
            Error("Q_CLUSTER['orm'] must be 'default', so a job and its queue row commit together.", id="offload.E005")
        )
    if isinstance(timeout, int):
        for kind in kinds.all_kinds():
            if kind.timeout > timeout:
                errors.append(
                    Warning(
                        f"Job kind {kind.name} allows {kind.timeout} s but the cluster timeout is {timeout} s; "
                        "it is cut to the cluster's.",
                        id="offload.W001",
                    )
                )
    if settings.CONN_MAX_AGE == 0:
        errors.append(
            Warning("CONN_MAX_AGE is 0: every queue poll opens a new database connection.", id="offload.W002")
        )
    return errors


# Values only a development or test run may use: the embedded run's generated keys carry this
# prefix, and the bundled Typesense's key is a known string.
DEVELOPMENT_SECRET_PREFIXES = ("offload-dev-", "offload-test-", "django-insecure-")
DEVELOPMENT_TYPESENSE_API_KEY = "offload-dev-key"
# What an example file or a guide puts where a secret goes (deploy/systemd/offload.env: change-me).
PLACEHOLDER_MARKERS = ("change-me", "changeme", "replace-me", "example", "placeholder", "secret-here")
# Django's own bar for a SECRET_KEY (security.W009): long, and not a few characters repeated.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
# A Typesense key shorter than this is guessable.
TYPESENSE_API_KEY_MIN_LENGTH = 24


def is_placeholder(value: str) -> bool:
    """Whether a secret is an example file's stand-in rather than a value of its own."""
    lowered = value.lower()
    return any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def check_deploy_secrets(app_configs=None, **kwargs) -> list:
    """`check --deploy`: a development SECRET_KEY or the bundled Typesense key is no production value."""
    errors = []
    if settings.SECRET_KEY.startswith(DEVELOPMENT_SECRET_PREFIXES):
        errors.append(
            Error(
                "SECRET_KEY is a development key: anyone who knows it can sign sessions and the worker's tasks.",
                hint="Set SECRET_KEY to a long random value kept secret.",
                id="offload.E009",
            )
        )
    elif is_placeholder(settings.SECRET_KEY) or (
        len(settings.SECRET_KEY) < SECRET_KEY_MIN_LENGTH
        or len(set(settings.SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
    ):
        errors.append(
            Error(
                "SECRET_KEY is a placeholder or too short to be secret.",
                hint=f"Set SECRET_KEY (or SECRET_KEY_FILE) to a random value of {SECRET_KEY_MIN_LENGTH} characters "
                "or more: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'.",
                id="offload.E012",
            )
        )
    if settings.TYPESENSE_API_KEY == DEVELOPMENT_TYPESENSE_API_KEY:
        errors.append(
            Error(
                "TYPESENSE_API_KEY is the development default.",
                hint="Start Typesense with a random API key and set TYPESENSE_API_KEY to it.",
                id="offload.E010",
            )
        )
    elif is_placeholder(settings.TYPESENSE_API_KEY) or len(settings.TYPESENSE_API_KEY) < TYPESENSE_API_KEY_MIN_LENGTH:
        errors.append(
            Error(
                "TYPESENSE_API_KEY is a placeholder or too short to be secret.",
                hint=f"Give Typesense a random key of {TYPESENSE_API_KEY_MIN_LENGTH} characters or more "
                "and set TYPESENSE_API_KEY (or TYPESENSE_API_KEY_FILE) to it.",
                id="offload.E013",
            )
        )
    passwords = {
        "DATABASE_URL": settings.DATABASES["default"].get("PASSWORD") or "",
        "REDIS_URL": urlsplit(settings.REDIS_URL).password or "",
        "REDIS_CACHE_URL": urlsplit(settings.REDIS_CACHE_URL).password or "",
    }
    for name, password in passwords.items():
        if is_placeholder(password):
            errors.append(
                Error(
                    f"The password in {name} is a placeholder.",
                    hint="Set the password the service was given (docs/deploy.md), in the URL or its _PASSWORD_FILE.",
                    id="offload.E014",
                )
            )
    if settings.DEBUG:
        errors.append(Error("DEBUG is on.", hint="Leave DEBUG unset (off) in production.", id="offload.E011"))
    return errors


def register_all() -> None:
    """Register the checks above with Django (from OffloadConfig.ready())."""
    for check in (check_rate_limits, check_enrich_providers, check_q_cluster, check_notify_ca_file):
        register(check)
    register(check_deploy_secrets, deploy=True)
