#!/usr/bin/env python
import os
import shlex
import sys
from pathlib import Path

# `make run` writes what it chose (its key, database, Redis and Typesense addresses) here while
# it runs (scripts/run.py); the same folder as the settings' OFFLOAD_VAR_DIR.
RUN_ENV = Path(__file__).resolve().parent / (os.environ.get("OFFLOAD_VAR_DIR") or "var") / "run.env"
# An environment that names its own secret key is configured: it never takes a run's values.
CONFIGURED = ("SECRET_KEY", "SECRET_KEY_FILE", "CREDENTIALS_DIRECTORY")


def read_run_env() -> None:
    """Beside `make run`, a command reaches the run's database and services: var/run.env fills what is unset."""
    if any(os.environ.get(name, "").strip() for name in CONFIGURED) or not RUN_ENV.is_file():
        return
    for line in RUN_ENV.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            os.environ.setdefault(name.strip(), "".join(shlex.split(value)))


if __name__ == "__main__":
    read_run_env()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
