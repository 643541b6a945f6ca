"""Search's Prometheus series."""

from prometheus_client import Counter, Histogram

SYNC_LAG = Histogram(
    "offload_search_sync_lag_seconds",
    "Seconds from a change being marked for indexing (in its transaction) to its document being written.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)

SEARCH_FALLBACKS = Counter(
    "offload_search_fallbacks_total",
    "Searches answered from the database because Typesense could not answer.",
)
