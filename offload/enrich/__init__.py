"""Metadata enrichment: a chain of providers (file name, embedded tags, NFO sidecars, TMDb)."""

from offload.enrich.job import run_enrich

__all__ = ["run_enrich"]
