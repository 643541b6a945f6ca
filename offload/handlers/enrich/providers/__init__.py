"""The interface every enrichment provider implements, and the registry of providers.

A provider is a module with one function, `provide(context) -> Proposal`. It proposes
descriptive field values and says what it read (for the enrichment digest); the merge
decides what is written. It raises ProviderError when its source is unusable (the other
providers go on) and ProviderUnavailable when a remote service is away for now (the job
is retried later).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from offload.jobs import TransientJobError
from offload.models import MediaItem

PROVIDERS = {
    "filename": "offload.handlers.enrich.providers.filename",
    "tags": "offload.handlers.enrich.providers.tags",
    "nfo": "offload.handlers.enrich.providers.nfo",
    "tmdb": "offload.handlers.enrich.providers.tmdb",
}


class ProviderError(Exception):
    """The provider could not use its source; the message is the reason the operator reads."""


class ProviderUnavailable(TransientJobError):
    """A remote provider is away for now; the job runs again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        # Seconds the service asked us to wait; the spine may use it as the retry delay.
        self.retry_after = retry_after


@dataclass
class Context:
    """What a provider may look at: the item, its file, and what earlier providers found."""

    item: MediaItem
    # The item's file, resolved inside the library roots; None when its path is unusable.
    path: Path | None
    library_root: Path
    # Descriptive values so far: locked fields as the operator set them, others as proposed.
    known: dict[str, Any] = field(default_factory=dict)
    # Identifiers for later providers, e.g. {"tmdb_movie_id": 603} from an NFO.
    hints: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The item's kind, or the best guess so far when the probe could not tell."""
        return self.known.get("kind") or self.item.kind


@dataclass
class Proposal:
    """A provider's answer."""

    fields: dict[str, Any] = field(default_factory=dict)
    # What the provider read, JSON-serialisable: same inputs, same digest, no write.
    inputs: Any = None
    # A kind guess (movie, episode, track); applied only to items the probe left as "other".
    kind: str | None = None
    hints: dict[str, Any] = field(default_factory=dict)
    # How it went, for the job's result: "ok", "no match", "no nfo", "disabled", "skipped" …
    status: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)


Provide = Callable[[Context], Proposal]


class UnknownProvider(LookupError):
    pass


def load(names: list[str]) -> list[tuple[str, Provide]]:
    """The providers named (in OFFLOAD_ENRICH_PROVIDERS order) with their provide functions."""
    unknown = [name for name in names if name not in PROVIDERS]
    if unknown:
        raise UnknownProvider(
            f"Unknown enrichment provider(s) {', '.join(map(repr, unknown))} in OFFLOAD_ENRICH_PROVIDERS; "
            f"known: {', '.join(PROVIDERS)}."
        )
    return [(name, import_module(PROVIDERS[name]).provide) for name in names]
