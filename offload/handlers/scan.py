"""The library.scan job: reconcile a library's items with the files below its folder."""

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from offload import jobs
from offload.jobs import JobDeferred, JobFailed, JobRun
from offload.lib import ffmpeg
from offload.lib.locks import RedisLock
from offload.lib.paths import FoundFile, has_media_suffix, is_inside_roots, is_sidecar, walk_library
from offload.models import Job, Library, MediaItem, MediaStatus

FINGERPRINT_CHUNK = 64 * 1024
SNIFF_TIMEOUT = 10.0
SCAN_LOCK_TTL = 30


def fingerprint(path: Path, size: int) -> str:
    """A content fingerprint that stays cheap on large files: size, head and tail."""
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(FINGERPRINT_CHUNK))
        if size > 2 * FINGERPRINT_CHUNK:
            fh.seek(-FINGERPRINT_CHUNK, 2)
            digest.update(fh.read(FINGERPRINT_CHUNK))
    return digest.hexdigest()


def looks_like_media(found: FoundFile) -> bool:
    """Media by content: a known suffix, or whatever ffprobe reads as audio or video."""
    if is_sidecar(found.relative_path):
        return False
    if has_media_suffix(found.relative_path):
        # A broken file with a media name still becomes an item, so its probe can
        # tell the operator what is wrong with it.
        return True
    try:
        ffmpeg.probe(found.real_path, timeout=SNIFF_TIMEOUT, quick=True)
    except ffmpeg.ProbeError:
        return False
    return True


def _mtime(found: FoundFile) -> datetime:
    return datetime.fromtimestamp(found.mtime, tz=UTC)


# After a probe, the stages that need only the probe; they do not wait on each other.
PIPELINE_AFTER_PROBE = ["media.enrich", "media.thumbnail"]


def _queue_probe(job: Job, item: MediaItem) -> None:
    jobs.enqueue("media.probe", target=item, user=job.requested_by, then=PIPELINE_AFTER_PROBE)


def run_scan(job: Job, library: Library, run: JobRun) -> dict[str, Any]:
    root = library.root.resolve()
    if not is_inside_roots(root):
        raise JobFailed(f"The library folder {root} is outside the library roots.")
    if not root.is_dir():
        raise JobFailed(f"The library folder {root} does not exist or is not a folder.")
    # One scan per library at a time, across hosts: a run taken over from a lost worker
    # must not race the old one, whose lock lapses within its TTL.
    lock = RedisLock(f"scan:{library.pk}", ttl_seconds=SCAN_LOCK_TTL)
    if not lock.acquire():
        raise JobDeferred(f"Another scan of library {library.pk} is running.", SCAN_LOCK_TTL / 3)
    lock.keep_alive()
    try:
        return _reconcile(job, run, library, root)
    finally:
        lock.release()


def _own_files(library: Library, root: Path) -> list[FoundFile]:
    """The files below root, less those a link leads to inside another library's folder.

    Those belong to that library and to whoever may see it: a link must not carry them into
    this one, where other people may see them.
    """
    others = [Path(p) for p in Library.objects.exclude(pk=library.pk).values_list("path", flat=True)]
    return [
        found
        for found in walk_library(root)
        if found.real_path.is_relative_to(root) or not any(found.real_path.is_relative_to(o) for o in others)
    ]


def _reconcile(job: Job, run: JobRun, library: Library, root) -> dict[str, Any]:
    run.progress(0, force=True)
    files = _own_files(library, root)
    existing = {item.relative_path: item for item in library.items.all()}
    counts = dict.fromkeys(("created", "changed", "moved", "removed", "unchanged", "skipped"), 0)
    total = len(files) or 1
    fresh = [found for found in files if found.relative_path not in existing]
    # Known files first, then the fresh ones: those do the work for what moved.
    known = [(found, existing.pop(found.relative_path)) for found in files if found.relative_path in existing]
    for done, (found, item) in enumerate(known):
        run.progress(100.0 * done / total)
        outcome = _update(job, item, found)
        if outcome:
            counts[outcome] += 1
    # What is left in `existing` vanished; a fresh file with its fingerprint moved.
    vanished = {item.fingerprint: item for item in existing.values() if item.fingerprint}
    for done, found in enumerate(fresh, start=len(known)):
        run.progress(100.0 * done / total)
        outcome = _add_or_move(job, library, found, vanished, existing)
        if outcome:
            counts[outcome] += 1

    for item in existing.values():
        item.delete()
        counts["removed"] += 1
    library.last_scanned_at = timezone.now()
    library.save(update_fields=["last_scanned_at"])
    # The scan read every item anyway: set the count right after anything that bypassed the signals.
    library.recount_items()
    return {"files": len(files), **counts}


def _update(job: Job, item: MediaItem, found: FoundFile) -> str | None:
    """A known file: "unchanged", or "changed" (its item back to new and probed again); None when unreadable."""
    if item.size == found.size and item.mtime == _mtime(found) and item.fingerprint:
        return "unchanged"
    try:
        fp = fingerprint(found.real_path, found.size)
    except OSError:
        return None
    changed = fp != item.fingerprint
    item.size, item.mtime, item.fingerprint = found.size, _mtime(found), fp
    fields = ["size", "mtime", "fingerprint", "updated_at"]
    with transaction.atomic():
        if changed:
            item.status, item.status_reason = MediaStatus.NEW, ""
            fields += ["status", "status_reason"]
        item.save(update_fields=fields)
        if changed:
            _queue_probe(job, item)
    return "changed" if changed else "unchanged"


def _add_or_move(
    job: Job, library: Library, found: FoundFile, vanished: dict[str, MediaItem], existing: dict[str, MediaItem]
) -> str | None:
    """A fresh file: the vanished item with its fingerprint "moved" here (and no longer left to remove),
    or a new item "created" and probed; "skipped" when it is no media, None when unreadable."""
    if not looks_like_media(found):
        return "skipped"
    try:
        fp = fingerprint(found.real_path, found.size)
    except OSError:
        return None
    moved = vanished.pop(fp, None)
    if moved is not None:
        existing.pop(moved.relative_path, None)
        moved.relative_path, moved.size, moved.mtime = found.relative_path, found.size, _mtime(found)
        moved.save(update_fields=["relative_path", "size", "mtime", "updated_at"])
        return "moved"
    with transaction.atomic():
        item = MediaItem.objects.create(
            library=library, relative_path=found.relative_path, size=found.size, mtime=_mtime(found), fingerprint=fp
        )
        _queue_probe(job, item)
    return "created"


KIND = jobs.JobKind("library.scan", run_scan, target_type="library", action="scan", label="Scan now", timeout=3600)
