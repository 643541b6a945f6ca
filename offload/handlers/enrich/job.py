"""The media.enrich job: run the providers in order, merge what they found, write what changed."""

import hashlib
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from offload.handlers.enrich import merge as merging
from offload.handlers.enrich import providers
from offload.handlers.enrich.providers import Context, ProviderError, ProviderUnavailable
from offload.jobs import JobFailed, JobRun
from offload.lib.paths import InvalidPath, resolve_item_path
from offload.models import Job, MediaItem, MediaKind

# Part of the digest: bump it when merging or a provider's mapping changes, so every item
# is merged again on its next enrichment instead of being skipped as unchanged.
DIGEST_VERSION = 1


def run_enrich(job: Job, item: MediaItem, run: JobRun) -> dict[str, Any]:
    """Enrich one item; unchanged inputs write nothing, a failing local provider does not stop the others."""
    names = list(settings.OFFLOAD_ENRICH_PROVIDERS)
    try:
        chain = providers.load(names)
    except providers.UnknownProvider as exc:
        raise JobFailed(str(exc)) from None

    context = Context(item=item, path=_item_path(item), library_root=item.library.root)
    locked = set(item.locked_fields)
    context.known = {f: getattr(item, f) for f in locked if f in MediaItem.DESCRIPTIVE_FIELDS}
    proposals: list[tuple[str, dict[str, Any] | None]] = []
    inputs: dict[str, Any] = {}
    report: dict[str, dict[str, Any]] = {}
    kind_guess: str | None = None
    unavailable: ProviderUnavailable | None = None

    for index, (name, provide) in enumerate(chain):
        run.progress(100.0 * index / len(chain))
        try:
            proposal = provide(context)
        except ProviderError as exc:
            proposals.append((name, None))
            inputs[name] = {"error": str(exc)}
            report[name] = {"status": "error", "error": str(exc)}
            continue
        except ProviderUnavailable as exc:
            # The rest of the chain still runs, so what it finds is kept meanwhile.
            unavailable = exc
            proposals.append((name, None))
            report[name] = {"status": "unavailable", "error": str(exc)}
            continue
        fields = merging.clean_fields(proposal.fields)
        proposals.append((name, fields))
        inputs[name] = proposal.inputs
        report[name] = {"status": proposal.status, "fields": sorted(fields), **proposal.detail}
        context.known.update({f: v for f, v in fields.items() if f not in locked})
        context.hints.update(proposal.hints)
        if proposal.kind:
            kind_guess = proposal.kind
            if item.kind == MediaKind.OTHER:
                context.known["kind"] = proposal.kind

    digest = enrichment_digest(item, names, locked, inputs)
    outcome = _write(item.pk, digest, proposals, kind_guess, complete=unavailable is None)
    if unavailable is not None:
        raise unavailable
    return {**outcome, "providers": report}


def _item_path(item: MediaItem) -> Path | None:
    """The item's path inside the library (links unresolved, so sidecars are found beside it), or None."""
    try:
        resolve_item_path(item.library.root, item.relative_path)
    except InvalidPath:
        return None
    return item.library.root / item.relative_path


def enrichment_digest(item: MediaItem, names: list[str], locked: set[str], inputs: dict[str, Any]) -> str:
    """A digest of everything a merge depends on: the providers' inputs, their order, the locks."""
    material = {
        "version": DIGEST_VERSION,
        "order": names,
        "kind": item.kind,
        "locked": sorted(locked),
        "inputs": inputs,
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _write(
    item_id: int,
    digest: str,
    proposals: list[tuple[str, dict[str, Any] | None]],
    kind_guess: str | None,
    *,
    complete: bool,
) -> dict[str, Any]:
    """Merge against the row as it is now, under its lock, and save only what changed."""
    with transaction.atomic():
        # The row lock orders this write against an operator's edit: whichever commits
        # second sees the other's change, so a field locked meanwhile is never overwritten.
        item = MediaItem.objects.select_for_update().filter(pk=item_id).first()
        if item is None:
            raise JobFailed("The media item no longer exists.")
        if complete and item.enrichment_digest == digest:
            return {"changed": False}
        current = {f: getattr(item, f) for f in MediaItem.DESCRIPTIVE_FIELDS}
        result = merging.merge(current, item.provenance or {}, item.locked_fields, proposals)
        changed = list(result.changes)
        if kind_guess and item.kind == MediaKind.OTHER and kind_guess != item.kind:
            item.kind = kind_guess
            changed.append("kind")
        # An incomplete run (a remote provider away) stores no digest: the retry must merge again.
        new_digest = digest if complete else ""
        now = timezone.now()
        if changed:
            for field, value in result.changes.items():
                setattr(item, field, value)
            item.provenance = result.provenance
            item.enrichment_digest = new_digest
            item.enriched_at = now
            item.save(update_fields=[*changed, "provenance", "enrichment_digest", "enriched_at", "updated_at"])
        elif complete:
            # Nothing a reader sees changed: a queryset update sends no post_save, so
            # nothing is re-indexed for bookkeeping alone.
            MediaItem.objects.filter(pk=item_id).update(
                provenance=result.provenance, enrichment_digest=new_digest, enriched_at=now
            )
    return {"changed": bool(changed), "fields": sorted(changed), "kept_locked": result.kept_locked}
