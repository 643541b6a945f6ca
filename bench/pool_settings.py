"""Settings for web servers with Django's psycopg connection pool: the app's settings plus a pool.

Under ASGI every request runs its sync code in a thread of its own, so CONN_MAX_AGE > 0 keeps one
connection per finished thread open until garbage collection; a pool bounds them. Needs
psycopg_pool (`pip install --target var/bench/site psycopg-pool`; the bench adds that folder to
PYTHONPATH).
"""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES

# Django's pool requires CONN_MAX_AGE = 0: a connection goes back to the pool after each request.
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": int(os.environ.get("BENCH_POOL_MIN", "1")),
    "max_size": int(os.environ.get("BENCH_POOL_MAX", "4")),
    "timeout": 30,
}
