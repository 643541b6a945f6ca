"""Internal job kinds: a no-op for measuring the spine, and a sleeper for exercising it."""

import time
from typing import Any

from offload.jobs import JobKind, JobRun
from offload.models import Job


def run_noop(job: Job, target: None, run: JobRun) -> dict[str, Any]:
    return {"ok": True}


def run_sleep(job: Job, target: None, run: JobRun) -> dict[str, Any]:
    """Sleep `seconds` in small steps, reporting progress and honouring cancel."""
    seconds = float(job.params.get("seconds", 1))
    steps = max(1, int(seconds / 0.1))
    for step in range(steps):
        time.sleep(seconds / steps)
        run.progress(100.0 * (step + 1) / steps)
    return {"slept": seconds, "attempt": job.attempts}


# Internal kinds, for benchmarks and tests: nobody requests them through the API or the admin.
KINDS = (
    JobKind("system.noop", run_noop, internal=True, rate_limit="", timeout=60),
    JobKind("system.sleep", run_sleep, internal=True, rate_limit="", timeout=600),
)
