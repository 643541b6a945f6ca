"""Rebuilding the index under a new collection, then swapping the alias; searches answer throughout.

1. Create `<alias>_v<ms>` and register it as the build (one build at a time).
2. From then on every sync writes to the alias *and* the build, and notes the item in the
   build's replay list (search.sync reads the build after claiming, so no write slips past).
3. Import every item in id order, in batches, checking each document's result.
4. Replay: mark the noted items again and sync them. The bulk copy of such an item may be
   older than a write the sync made meanwhile; the replayed write comes after the bulk import,
   so the newest state wins. Writes after this point reach the build through the dual write.
5. Swap the alias, mark the build live (syncs stop the dual write), drop the old collection.
"""

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from offload.lib.locks import RedisLock
from offload.models import MediaItem
from search import typesense as ts
from search.documents import iter_document_batches
from search.models import BuildReplay, BuildStatus, IndexBuild, PendingSync
from search.sync import mark_items, sync_pending

log = logging.getLogger(__name__)

# How long the replay waits for its writes (a failing document waits out its backoff).
REPLAY_WAIT_SECONDS = 60.0
# Kept alive every third of this while the build runs; a dead worker's lock frees itself soon.
REINDEX_LOCK_TTL = 30


class ReindexBusy(Exception):
    """Another reindex is building now."""


def rebuild(
    *,
    batch_size: int | None = None,
    progress: Callable[[float], None] | None = None,
    counts: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Build a fresh collection from the database and put it behind the alias; answer figures.

    One at a time: a second reindex gives up on the lock before it creates a collection. The
    build's row in the database keeps the rule too, so a Redis outage does not stop a reindex.
    `progress` hears a percentage (a job's progress); `counts` hears (stage, done, total).
    """
    lock = RedisLock("reindex", ttl_seconds=REINDEX_LOCK_TTL)
    try:
        if not lock.acquire():
            raise ReindexBusy("A reindex is already running (another worker holds the reindex lock).")
    except RedisError as exc:
        log.warning("reindex: the lock is unavailable (%s); the build registration alone keeps one at a time", exc)
        return _rebuild(batch_size, progress, counts)
    lock.keep_alive()
    try:
        return _rebuild(batch_size, progress, counts)
    finally:
        try:
            lock.release()
        except RedisError as exc:
            log.warning("reindex: could not release the lock (%s); it expires by itself", exc)


def _rebuild(
    batch_size: int | None, progress: Callable[[float], None] | None, counts: Callable[[str, int, int], None] | None
) -> dict[str, Any]:
    client = ts.require_write_client()
    batch_size = batch_size or settings.SEARCH_REINDEX_BATCH
    started = time.monotonic()
    # An alias must exist before the build: a sync that found none would create one, and
    # could point it back at its own collection right after the swap.
    ts.ensure_collection(client)
    name = ts.new_collection_name()
    ts.create_collection(client, name)
    try:
        build = _register(name)
    except BaseException:
        ts.drop_collection(client, name)
        raise
    swapped = False
    try:
        documents = _import_all(client, build, batch_size, progress, counts)
        build_seconds = time.monotonic() - started
        if counts:
            counts("replaying", 0, BuildReplay.objects.filter(build=build).count())
        replayed, unsettled = _replay(build)
        if counts:
            counts("swapping", replayed, replayed)
        previous = ts.swap_alias(client, name)
        swapped = True
        _go_live(build, documents, replayed)
    except BaseException as exc:
        # BaseException: a cancelled or timed-out job must not leave a build that every
        # sync keeps writing to.
        _fail(build, exc)
        if not swapped:
            _drop_quietly(client, name)
        raise
    if previous and previous != name:
        _drop_quietly(client, previous)
    if progress:
        progress(100.0)
    seconds = time.monotonic() - started
    log.info("reindex: %s is live with %d documents (%d replayed) in %.1f s", name, documents, replayed, seconds)
    return {
        "collection": name,
        "previous": previous,
        "documents": documents,
        "replayed": replayed,
        "unsettled": unsettled,
        "seconds": round(seconds, 3),
        "documents_per_second": round(documents / build_seconds, 1) if build_seconds > 0 else None,
    }


def _register(name: str) -> IndexBuild:
    for _ in range(2):
        try:
            with transaction.atomic():
                return IndexBuild.objects.create(collection=name)
        except IntegrityError:
            current = IndexBuild.objects.filter(status=BuildStatus.BUILDING).first()
            if current is not None and not _is_stale(current):
                since = f"{current.started_at:%Y-%m-%d %H:%M:%S}"
                raise ReindexBusy(f"A reindex is already building {current.collection} (started {since}).") from None
            abandon_stale_builds()
    raise ReindexBusy("Could not register the build; another reindex started at the same time.")


def _is_stale(build: IndexBuild) -> bool:
    return build.heartbeat_at < timezone.now() - timedelta(seconds=settings.SEARCH_REINDEX_STALE_SECONDS)


def abandon_stale_builds() -> list[str]:
    """Fail builds whose process stopped beating and drop their collections; answer their names."""
    stale_before = timezone.now() - timedelta(seconds=settings.SEARCH_REINDEX_STALE_SECONDS)
    names = list(
        IndexBuild.objects.filter(status=BuildStatus.BUILDING, heartbeat_at__lt=stale_before).values_list(
            "collection", flat=True
        )
    )
    if not names:
        return []
    IndexBuild.objects.filter(collection__in=names, status=BuildStatus.BUILDING).update(
        status=BuildStatus.FAILED, finished_at=timezone.now(), error="Abandoned: its process stopped."
    )
    client = ts.write_client()
    if client is not None:
        for name in names:
            _drop_quietly(client, name)
    log.warning("reindex: abandoned stale build(s) %s", names)
    return names


def _prefetched(batches: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """The batches, each read by a thread of its own while the previous one is imported."""

    def read_next() -> list[dict[str, Any]] | None:
        return next(batches, None)

    # One reader thread: the generator is never run by two threads at once. Reading and
    # importing both wait on I/O, so overlapping them nearly halves a rebuild.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reindex-reader") as reader:
        try:
            pending = reader.submit(read_next)
            while (batch := pending.result()) is not None:
                pending = reader.submit(read_next)
                yield batch
        finally:
            reader.submit(connections.close_all).result()


def _import_all(
    client,
    build: IndexBuild,
    batch_size: int,
    progress: Callable[[float], None] | None,
    counts: Callable[[str, int, int], None] | None,
) -> int:
    items = MediaItem.objects.count()
    total = items or 1
    seen = written = 0
    if counts:
        counts("copying", 0, items)
    for batch in _prefetched(iter_document_batches(batch_size)):
        refused = ts.import_documents(client, build.collection, batch)
        if refused:
            # Retried through the sync path by the replay; the reasons are logged there too.
            log.warning("reindex: %d document(s) refused, e.g. %s", len(refused), next(iter(refused.items())))
            BuildReplay.objects.bulk_create(
                [BuildReplay(build=build, item_id=int(doc_id)) for doc_id in refused], ignore_conflicts=True
            )
        seen += len(batch)
        written += len(batch) - len(refused)
        IndexBuild.objects.filter(pk=build.pk).update(heartbeat_at=timezone.now(), documents=written)
        if progress:
            progress(min(90.0, 90.0 * seen / total))
        if counts:
            counts("copying", seen, max(items, seen))
    return written


def _replay(build: IndexBuild) -> tuple[int, int]:
    """Sync again every item written during the bulk import; answer (replayed, still waiting)."""
    ids = list(BuildReplay.objects.filter(build=build).values_list("item_id", flat=True))
    if not ids:
        return 0, 0
    token = mark_items(ids)
    deadline = time.monotonic() + REPLAY_WAIT_SECONDS
    while True:
        IndexBuild.objects.filter(pk=build.pk).update(heartbeat_at=timezone.now())
        # Rows still carrying this token were not written since the mark; a row marked again
        # since then is written by the sync of that mark, which writes to the build too.
        waiting = list(PendingSync.objects.filter(item_id__in=ids, token=token).values_list("item_id", flat=True))
        if not waiting:
            return len(ids), 0
        if time.monotonic() >= deadline:
            log.warning("reindex: %d replayed write(s) still waiting; they follow through the alias", len(waiting))
            return len(ids), len(waiting)
        report = sync_pending(only=waiting, budget_seconds=5.0)
        if not report.upserted and not report.deleted:
            # Claimed by a search worker, or waiting out a retry delay.
            time.sleep(0.1)


def _go_live(build: IndexBuild, documents: int, replayed: int) -> None:
    with transaction.atomic():
        IndexBuild.objects.filter(status=BuildStatus.LIVE).update(status=BuildStatus.REPLACED)
        IndexBuild.objects.filter(pk=build.pk).update(
            status=BuildStatus.LIVE, finished_at=timezone.now(), documents=documents, replayed=replayed
        )
    BuildReplay.objects.filter(build=build).delete()


def _fail(build: IndexBuild, exc: BaseException) -> None:
    IndexBuild.objects.filter(pk=build.pk, status=BuildStatus.BUILDING).update(
        status=BuildStatus.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"[:2000]
    )
    BuildReplay.objects.filter(build=build).delete()


def _drop_quietly(client, name: str) -> None:
    try:
        ts.drop_collection(client, name)
    except ts.ERRORS as exc:
        # A leftover collection costs memory, not correctness; drift and the admin show it.
        log.warning("reindex: could not drop collection %s: %s", name, exc)
