"""Files the workers write under MEDIA_ROOT: built in a job's partial folder, published whole.

A reader never sees half a file: output is written under MEDIA_ROOT/.partial/ (the same
filesystem) and renamed into place only once complete and verified. A killed attempt's
partial folder is removed by the next attempt of the same job.
"""

import os
import shutil
import uuid
from pathlib import Path

from django.conf import settings

from offload.models import Job


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def fresh_partial_dir(job: Job) -> Path:
    """An empty working folder for this job, cleared of any earlier attempt's leftovers."""
    path = media_root() / ".partial" / f"job-{job.pk}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def remove_partial_dir(job: Job) -> None:
    shutil.rmtree(media_root() / ".partial" / f"job-{job.pk}", ignore_errors=True)


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
