"""Keeping Typesense in step with the database: the outbox, and the task that drains it.

A change marks its item in `PendingSync` inside its own transaction (so it is durable exactly
when the change is), and one sync task per transaction is queued on the search lane after
commit. The task claims rows with a lease, re-reads the items, upserts what exists, deletes
what does not, and removes a row only when its document was accepted and the item was not
marked again meanwhile. Rows that failed wait with a backoff; a scheduled drain retries them.
"""

import logging
import random
import secrets
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import typesense
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.models import OrmQ
from django_q.tasks import async_task

from search import typesense as ts
from search.cache import bump_generation
from search.documents import load_documents
from search.metrics import SYNC_LAG
from search.models import BuildReplay, BuildStatus, IndexBuild, PendingSync

log = logging.getLogger(__name__)

SYNC_TASK = "search.tasks.sync_pending"

_local = threading.local()
_brokers: dict[str, Broker] = {}


# --- Marking ---------------------------------------------------------------------


def mark_items(item_ids: Iterable[int], *, using: str = DEFAULT_DB_ALIAS) -> int | None:
    """Record, in the caller's transaction, that these items' documents must be rewritten.

    Every write path that bypasses model signals (`queryset.update()`, bulk_create, raw SQL)
    calls this with the ids it touched; deleted ids are fine, their documents get deleted.
    Answers the token the rows carry until a sync writes them or they are marked again.
    """
    ids = sorted({int(i) for i in item_ids if i is not None})
    if not ids:
        return None
    now = timezone.now()
    token = secrets.randbits(62)
    # Sorted ids: two transactions marking overlapping sets lock the rows in the same order.
    PendingSync.objects.using(using).bulk_create(
        [PendingSync(item_id=i, token=token, enqueued_at=now, marked_at=now) for i in ids],
        update_conflicts=True,
        unique_fields=["item_id"],
        update_fields=["token", "marked_at"],
        batch_size=1000,
    )
    sync_after_commit(using)
    return token


def sync_after_commit(using: str = DEFAULT_DB_ALIAS) -> None:
    """Queue one sync task when the current transaction commits, however many items it marks."""
    connection = transaction.get_connection(using)
    pending = getattr(_local, using, None)
    if (
        pending is not None
        and not pending.ran
        and connection.in_atomic_block
        # Gone from the list when its savepoint (or the transaction) rolled back.
        and any(callback is pending for _, callback, _ in connection.run_on_commit)
    ):
        return

    def queue_sync_after_commit() -> None:
        queue_sync_after_commit.ran = True
        # Cached answers predate this commit; the sync bumps again once the index has it.
        bump_generation()
        queue_sync()

    # Whether it ran: a test harness may run callbacks without ending the transaction.
    queue_sync_after_commit.ran = False
    setattr(_local, using, queue_sync_after_commit)
    # robust: the change is committed already; a failed enqueue is logged and the
    # scheduled drain picks the rows up, the request does not fail.
    transaction.on_commit(queue_sync_after_commit, using=using, robust=True)


def _lane_broker() -> Broker:
    name = settings.SEARCH_Q_CLUSTER
    broker = _brokers.get(name)
    if broker is None:
        # django-q2 builds a broker per async_task call otherwise; with the ORM broker
        # the queue is the cluster name, so this is the search lane's queue.
        broker = _brokers[name] = get_broker(name)
    return broker


def queue_sync() -> None:
    """Queue a sync task on the search lane, unless one is already waiting to start."""
    broker = _lane_broker()
    # A task not yet taken will claim whatever is pending when it starts, this commit's
    # rows included; another one would only find nothing to do.
    if settings.Q_CLUSTER.get("orm") and OrmQ.objects.filter(key=broker.list_key, lock__lte=timezone.now()).exists():
        return
    async_task(SYNC_TASK, broker=broker, timeout=settings.SEARCH_SYNC_TASK_TIMEOUT)


# --- Draining ---------------------------------------------------------------------


@dataclass
class SyncReport:
    upserted: int = 0
    deleted: int = 0
    failed: int = 0
    # Marked again while being indexed: indexed again by the same run.
    changed_meanwhile: int = 0
    import_requests: int = 0
    unavailable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Claim:
    item_id: int
    token: int
    enqueued_at: datetime
    attempts: int


def retry_delay(attempts: int) -> float:
    """Seconds before a failed row is tried again: doubling from the base, capped, with jitter."""
    base = settings.SEARCH_SYNC_RETRY_SECONDS * 2 ** max(0, attempts - 1)
    return min(settings.SEARCH_SYNC_RETRY_MAX_SECONDS, base) * random.uniform(0.75, 1.0)


def sync_pending(*, only: Collection[int] | None = None, budget_seconds: float | None = None) -> SyncReport:
    """Write pending items to Typesense until none is claimable; `only` limits it to some ids."""
    report = SyncReport()
    client = ts.write_client()
    if client is None:
        report.unavailable = True
        return report
    budget = settings.SEARCH_SYNC_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    # Ids refused in this run: not taken again by it, even when their retry delay is zero.
    refused: set[int] = set()
    while True:
        if time.monotonic() >= deadline:
            # A long backlog continues in a fresh task rather than holding this worker.
            queue_sync()
            break
        claims = _claim(settings.SEARCH_SYNC_BATCH, exclude=refused, only=only)
        if not claims:
            break
        refused.update(_sync_batch(client, claims, report))
        if report.unavailable:
            break
    return report


def _claim(limit: int, *, exclude: set[int], only: Collection[int] | None) -> list[_Claim]:
    now = timezone.now()
    with transaction.atomic():
        rows = PendingSync.objects.select_for_update(skip_locked=True).filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
        )
        if exclude:
            rows = rows.exclude(item_id__in=exclude)
        if only is not None:
            rows = rows.filter(item_id__in=list(only))
        claims = [
            _Claim(*row)
            for row in rows.order_by("enqueued_at", "item_id").values_list(
                "item_id", "token", "enqueued_at", "attempts"
            )[:limit]
        ]
        if claims:
            lease = now + timedelta(seconds=settings.SEARCH_SYNC_LEASE_SECONDS)
            PendingSync.objects.filter(item_id__in=[c.item_id for c in claims]).update(claimed_until=lease)
    return claims


def _sync_batch(client: typesense.Client, claims: list[_Claim], report: SyncReport) -> set[int]:
    """Write one claimed batch; answer the ids Typesense refused."""
    ids = [c.item_id for c in claims]
    # Read after the claim: a build registered before this point sees these writes too,
    # and one registered later read the items itself (see search.reindex).
    builds = list(IndexBuild.objects.filter(status=BuildStatus.BUILDING).values_list("pk", "collection"))
    if builds:
        BuildReplay.objects.bulk_create(
            [BuildReplay(build_id=build_id, item_id=i) for build_id, _ in builds for i in ids],
            ignore_conflicts=True,
        )
    documents = load_documents(ids)
    gone = [i for i in ids if i not in documents]
    failed: dict[int, str] = {}
    try:
        for collection, is_alias in [(ts.alias_name(), True)] + [(name, False) for _, name in builds]:
            refused = _write(client, collection, list(documents.values()), gone, is_alias=is_alias)
            report.import_requests += 1 if documents else 0
            failed.update({int(doc_id): error for doc_id, error in refused.items()})
    except ts.ERRORS as exc:
        report.unavailable = True
        report.failed += len(claims)
        log.warning("search sync: Typesense unavailable, %d write(s) kept for later: %s", len(claims), exc)
        _retry_later(claims, f"{type(exc).__name__}: {exc}")
        return set(ids)
    ok = [c for c in claims if c.item_id not in failed]
    report.upserted += sum(1 for c in ok if c.item_id in documents)
    report.deleted += sum(1 for c in ok if c.item_id not in documents)
    # Marked again meanwhile: released, and this run's next claim takes them again.
    report.changed_meanwhile += len(_done(ok))
    if failed:
        report.failed += len(failed)
        by_id = {c.item_id: c for c in claims}
        for item_id, error in failed.items():
            log.warning("search sync: document %s refused: %s", item_id, error)
            _retry_later([by_id[item_id]], error)
    return set(failed)


def _write(
    client: typesense.Client, collection: str, documents: list[dict], gone: list[int], *, is_alias: bool
) -> dict[str, str]:
    try:
        refused = ts.import_documents(client, collection, documents)
    except ts.NotFound:
        if not is_alias:
            # The build's collection is gone: that build failed, and its replay no longer matters.
            log.warning("search sync: building collection %s is missing; skipped", collection)
            return {}
        ts.ensure_collection(client)
        refused = ts.import_documents(client, collection, documents)
    ts.delete_documents(client, collection, gone)
    return refused


def _done(claims: list[_Claim]) -> set[int]:
    """Remove the rows whose documents are written; answer the ids marked again meanwhile."""
    if not claims:
        return set()
    now = timezone.now()
    unchanged = Q()
    for claim in claims:
        unchanged |= Q(item_id=claim.item_id, token=claim.token)
    PendingSync.objects.filter(unchanged).delete()
    ids = [c.item_id for c in claims]
    changed = set(PendingSync.objects.filter(item_id__in=ids).values_list("item_id", flat=True))
    if changed:
        # Marked again while being written: claimable at once, its lag counted from that change.
        PendingSync.objects.filter(item_id__in=changed).update(
            claimed_until=None, attempts=0, last_error="", enqueued_at=F("marked_at")
        )
    for claim in claims:
        if claim.item_id not in changed:
            SYNC_LAG.observe(max(0.0, (now - claim.enqueued_at).total_seconds()))
    bump_generation()
    return changed


def _retry_later(claims: list[_Claim], error: str) -> None:
    now = timezone.now()
    for claim in claims:
        PendingSync.objects.filter(item_id=claim.item_id).update(
            claimed_until=now + timedelta(seconds=retry_delay(claim.attempts + 1)),
            attempts=F("attempts") + 1,
            last_error=error[:2000],
        )


def backlog() -> tuple[int, float]:
    """(writes waiting, age in seconds of the oldest)."""
    stats = PendingSync.objects.aggregate(waiting=Count("pk"), oldest=Min("enqueued_at"))
    if not stats["waiting"]:
        return 0, 0.0
    return stats["waiting"], (timezone.now() - stats["oldest"]).total_seconds()
