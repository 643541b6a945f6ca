"""What went wrong, as a group: a failed job's reason reduced to (exception type, normalised message).

Ids, numbers, paths and quoted names are blanked out of the reason, so "item 12 not found at
/a/b.mkv" and "item 40 not found at /c/d.mkv" are one problem. The spine stores the group with
each failure (transitions._finish), so the admin groups failures in SQL, never in Python.
"""

import hashlib
import re

# How offload.jobs.runner words each failure: the exception type is recovered from the wording.
_UNEXPECTED = re.compile(r"^Unexpected error: (?P<type>[A-Za-z_][\w.]*): ?")
_ATTEMPTS_SUFFIX = re.compile(r"\s*\(after \d+ attempts\)\s*$")
_KNOWN_PREFIXES = (
    ("Timed out after ", "TimeoutException"),
    ("Gave up after ", "WorkerLost"),
    ("Cancelled", "Cancelled"),
)
_BLANKS = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[^\s'\"/:,;()]+){2,}/?"), "<path>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "'…'"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)
MESSAGE_LENGTH = 200


def classify(error: str | None) -> tuple[str, str]:
    """(exception type, normalised message) of a failed job's error text."""
    text = (error or "").strip()
    # Only a transient failure is retried, and the last one's reason says after how many attempts.
    retried = bool(_ATTEMPTS_SUFFIX.search(text))
    text = _ATTEMPTS_SUFFIX.sub("", text)
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    match = _UNEXPECTED.match(first_line)
    if match:
        exception, message = match.group("type"), first_line[match.end() :]
    else:
        known = next((name for prefix, name in _KNOWN_PREFIXES if first_line.startswith(prefix)), None)
        exception = known or ("TransientJobError" if retried else "JobFailed")
        message = first_line
    for pattern, blank in _BLANKS:
        message = pattern.sub(blank, message)
    return exception, message.strip()[:MESSAGE_LENGTH] or "(no reason given)"


def fingerprint(kind: str, exception: str, message: str) -> str:
    """A short, stable id of a failure group."""
    return hashlib.sha256(f"{kind}\0{exception}\0{message}".encode()).hexdigest()[:16]
