"""gunicorn's settings for Offload (`gunicorn -c deploy/gunicorn.conf.py config.wsgi`).

With LOG_FORMAT=json its own lines (the master's included, written before the app loads) are
JSON objects like the app's, one per line.
"""

import os

accesslog = "-"
graceful_timeout = 30

if os.environ.get("LOG_FORMAT", "").strip() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "offload.logs.ContextFilter"}},
        "formatters": {"json": {"()": "offload.logs.JsonFormatter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]},
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
