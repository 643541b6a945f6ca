"""Log records with their context: the request id in the web, the job id and kind in a worker.

`LOG_FORMAT=json` writes one JSON object per line (JsonFormatter); plain text appends the
same context as `key=value` pairs. Only the standard library here: the logging
configuration imports this module before the apps are loaded.
"""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

# What the current request or job is; a context variable follows asyncio tasks and the
# threads asgiref runs sync code in.
_context: ContextVar[dict[str, object] | None] = ContextVar("offload_log_context", default=None)


def current() -> dict[str, object]:
    """The context fields of the code running now (empty outside a request or a job)."""
    return dict(_context.get() or {})


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Log records made inside carry these fields (nested blocks add to the outer ones)."""
    token = _context.set({**current(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind_request(request_id: str) -> None:
    """The request id for the rest of this request, including Django's own lines after the middleware.

    Not reset when the middleware returns: Django logs a 4xx/5xx response after the whole
    middleware chain. `clear` runs when the request finishes (request_finished).
    """
    _context.set({"request_id": request_id})


def clear(**kwargs: object) -> None:
    """Forget the request's context (connected to request_finished)."""
    _context.set(None)


class ContextFilter(logging.Filter):
    """Puts the context on each record: as attributes, and as `record.context` for plain text."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current()
        for key, value in fields.items():
            setattr(record, key, value)
        record.context_fields = fields
        record.context = "".join(f" {key}={value}" for key, value in fields.items())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        entry.update(getattr(record, "context_fields", None) or current())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
