"""django-q2 entry points of the search app: the sync lane's tasks and the reindex job."""

from typing import Any

from offload.jobs import STAFF, JobFailed, JobKind, JobRun, TransientJobError
from offload.models import Job
from search import drift, reindex, sync
from search import typesense as ts


def sync_pending() -> dict[str, Any]:
    """The search lane's task: write pending items to Typesense."""
    return sync.sync_pending().as_dict()


def drain_pending() -> dict[str, Any]:
    """Scheduled every minute: retries writes that failed or whose after-commit task was lost."""
    return sync.sync_pending().as_dict()


def reconcile() -> dict[str, Any]:
    """Scheduled: repair drift between the index and the database."""
    return drift.reconcile()


def run_reindex(job: Job, target: None, run: JobRun) -> dict[str, Any]:
    """The search.reindex job: rebuild the collection and swap the alias."""
    try:
        return reindex.rebuild(progress=run.progress)
    except reindex.ReindexBusy as exc:
        raise JobFailed(str(exc)) from exc
    except (ts.SearchUnavailable, *ts.ERRORS) as exc:
        raise TransientJobError(f"Typesense unavailable: {type(exc).__name__}: {exc}") from exc


KIND = JobKind("search.reindex", run_reindex, requested_by=STAFF, rate_limit="", timeout=3600)
