"""Files the workers write under MEDIA_ROOT: built in a job's partial folder, published whole.

A reader never sees half a file: output is written under MEDIA_ROOT/.partial/ (the same
filesystem) and renamed into place only once complete and verified. Each attempt of a job
works in a folder of its own (.partial/job-<id>/attempt-<n>): an attempt taken over while
still alive cleans up after itself without touching its successor's files, and the next
attempt removes what earlier (killed) attempts left.
"""

import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol

from django.conf import settings


class Attempt(Protocol):
    """What the folders are named after: a job's id and its attempt's number (a Job has both)."""

    pk: int
    attempts: int


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def _job_dir(job: Attempt) -> Path:
    return media_root() / ".partial" / f"job-{job.pk}"


def _attempt_of(entry: Path) -> int | None:
    prefix, _, number = entry.name.partition("-")
    return int(number) if prefix == "attempt" and number.isdigit() else None


def partial_dir(job: Attempt) -> Path:
    """This attempt's working folder."""
    return _job_dir(job) / f"attempt-{job.attempts}"


def fresh_partial_dir(job: Attempt) -> Path:
    """An empty working folder for this attempt; earlier attempts' leftovers are removed, later ones kept."""
    folder = _job_dir(job)
    if folder.is_dir():
        for entry in folder.iterdir():
            attempt = _attempt_of(entry)
            if attempt is None or attempt <= job.attempts:
                _remove(entry)
    path = partial_dir(job)
    path.mkdir(parents=True)
    return path


def remove_partial_dir(job: Attempt) -> None:
    """Remove this attempt's working folder (and the job's, once no attempt has one)."""
    shutil.rmtree(partial_dir(job), ignore_errors=True)
    try:
        _job_dir(job).rmdir()
    except OSError:
        pass  # another attempt's folder is still there, or none was made


def remove_all_partial_dirs(job: Attempt) -> None:
    """Remove every attempt's working folder: the job is over and no attempt will run again."""
    shutil.rmtree(_job_dir(job), ignore_errors=True)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def publish(source: Path, relative_dest: str) -> Path:
    """Move a finished file or folder to MEDIA_ROOT/relative_dest, replacing what was there."""
    dest = media_root() / relative_dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        # Folders cannot be swapped in one rename: move the old one aside first.
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        if dest.exists():
            os.replace(dest, old)
        os.replace(source, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, dest)
    return dest


def url_for(relative_path: str) -> str:
    return settings.MEDIA_URL + relative_path if relative_path else ""
