"""Metadata enrichment: a chain of providers (file name, embedded tags, NFO sidecars, TMDb)."""

from offload.handlers.enrich.job import run_enrich

__all__ = ["run_enrich"]

from offload.jobs import JobKind

KIND = JobKind("media.enrich", run_enrich, target_type="media", action="enrich", label="Enrich metadata", timeout=300)
