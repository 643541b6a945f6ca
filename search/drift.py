"""Drift: documents missing from, orphaned in, or stale in the index, compared with the database."""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef

from offload.models import MediaItem, Rendition
from search import typesense as ts
from search.documents import epoch_us
from search.models import PendingSync
from search.reindex import abandon_stale_builds
from search.sync import mark_items, sync_pending

log = logging.getLogger(__name__)

SAMPLE = 20
# Rows compared between two progress reports.
PROGRESS_EVERY = 1000


@dataclass
class DriftReport:
    collection: str | None
    indexed: int
    in_database: int
    # Items with no document; documents with no item; documents older than their item.
    missing: list[int] = field(default_factory=list)
    orphaned: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    # Items with a write waiting in the outbox: in flight, not drift.
    pending: int = 0

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.orphaned) + len(self.stale)

    @property
    def ids(self) -> list[int]:
        return sorted({*self.missing, *self.orphaned, *self.stale})

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("missing", "orphaned", "stale"):
            data[name] = {"count": len(data[name]), "sample": data[name][:SAMPLE]}
        return data


def find_drift(progress: Callable[[str, int, int], None] | None = None) -> DriftReport:
    """Compare every document's id, updated_at and has_renditions with the database.

    `progress` hears (stage, done, total): the export of the index, then the rows compared.
    """
    # The write client: exporting a large collection takes longer than a search may.
    client = ts.require_write_client()
    collection = ts.alias_target(client)
    indexed: dict[int, tuple[Any, Any]] = {}
    if collection is not None:
        if progress:
            progress("exporting", 0, 0)
        for doc in ts.export_documents(client, collection, ("id", "updated_at", "has_renditions")):
            indexed[int(doc["id"])] = (doc.get("updated_at"), doc.get("has_renditions"))
    pending = set(PendingSync.objects.values_list("item_id", flat=True))
    rows = (
        MediaItem.objects.order_by("pk")
        .annotate(has_renditions=Exists(Rendition.objects.filter(item=OuterRef("pk"))))
        .values_list("pk", "updated_at", "has_renditions")
    )
    report = DriftReport(collection=collection, indexed=len(indexed), in_database=0, pending=len(pending))
    total = MediaItem.objects.count() if progress else 0
    for pk, updated_at, has_renditions in rows.iterator(chunk_size=5000):
        report.in_database += 1
        if progress and report.in_database % PROGRESS_EVERY == 0:
            progress("comparing", report.in_database, max(total, report.in_database))
        doc = indexed.pop(pk, None)
        if pk in pending:
            continue
        if doc is None:
            report.missing.append(pk)
        elif doc != (epoch_us(updated_at), has_renditions):
            report.stale.append(pk)
    report.orphaned = sorted(pk for pk in indexed if pk not in pending)
    if progress:
        progress("comparing", report.in_database, report.in_database)
    return report


def repair(report: DriftReport, *, now: bool = True) -> int:
    """Queue a write for every drifted item (and run it at once when `now`); answer how many."""
    ids = report.ids
    if not ids:
        return 0
    mark_items(ids)
    if now:
        sync_pending(only=ids)
    return len(ids)


def reconcile() -> dict[str, Any]:
    """The scheduled check: find drift and repair it; drift found means a write was lost."""
    abandoned = abandon_stale_builds()
    report = find_drift()
    if report.total:
        log.warning(
            "search drift: %d missing, %d orphaned, %d stale; repairing",
            len(report.missing),
            len(report.orphaned),
            len(report.stale),
        )
    repaired = repair(report)
    return {**report.summary(), "repaired": repaired, "abandoned_builds": abandoned}
