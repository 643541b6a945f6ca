"""Failed jobs grouped by what went wrong, and the operator's "retry this group".

A group's fingerprint is (kind, exception type, normalised message): ids, numbers, paths
and quoted names are blanked out of the reason, so "item 12 not found at /a/b.mkv" and
"item 40 not found at /c/d.mkv" are one problem with a count of two.
"""

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from offload import actions
from offload.jobs.transitions import IdempotencyKeyReused, JobConflict
from offload.models import Job, JobStatus

# The newest failed jobs looked at; older ones are a history, not today's problem.
SCAN_LIMIT = 10_000
# Jobs retried by one click; a bigger group takes more clicks, each a bounded request.
RETRY_LIMIT = 500
SAMPLE = 5

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


@dataclass
class FailureGroup:
    fingerprint: str
    kind: str
    exception: str
    message: str
    # The newest job's own reason, unblanked, as an example.
    example: str
    last_failed_at: datetime | None
    first_failed_at: datetime | None
    job_ids: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.job_ids)

    @property
    def sample_ids(self) -> list[int]:
        return self.job_ids[:SAMPLE]


def _failed_jobs() -> Iterator[tuple[int, str, str | None, datetime | None]]:
    # Served by the (status, kind) index; newest first, so each group's example is its newest.
    rows = (
        Job.objects.filter(status=JobStatus.FAILED)
        .order_by("-finished_at", "-id")
        .values_list("pk", "kind", "error", "finished_at")
    )
    return iter(rows[:SCAN_LIMIT])


def failure_groups() -> list[FailureGroup]:
    """Groups of failed jobs (the newest SCAN_LIMIT), biggest first; one query."""
    groups: dict[str, FailureGroup] = {}
    for pk, kind, error, finished_at in _failed_jobs():
        exception, message = classify(error)
        key = fingerprint(kind, exception, message)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(key, kind, exception, message, error or "", finished_at, finished_at)
        group.job_ids.append(pk)
        group.first_failed_at = finished_at
    return sorted(groups.values(), key=lambda g: (-g.count, g.kind, g.message))


@dataclass
class RetryOutcome:
    retried: int = 0
    refused: list[str] = field(default_factory=list)
    # Jobs of the group left for another click (beyond RETRY_LIMIT).
    remaining: int = 0


def retry_group(user, key: str) -> RetryOutcome:
    """Retry every failed job of the group (at most RETRY_LIMIT); each retry goes to the admin log."""
    group = next((g for g in failure_groups() if g.fingerprint == key), None)
    outcome = RetryOutcome()
    if group is None:
        return outcome
    chosen = group.job_ids[:RETRY_LIMIT]
    outcome.remaining = group.count - len(chosen)
    for job in Job.objects.filter(pk__in=chosen, status=JobStatus.FAILED).order_by("pk"):
        try:
            actions.retry_job(user, job, reason=f"failure group {key}")
        except (JobConflict, IdempotencyKeyReused) as exc:
            outcome.refused.append(str(exc))
        else:
            outcome.retried += 1
    return outcome
