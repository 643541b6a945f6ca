"""Internal job kinds: a no-op for measuring the spine, and a sleeper for exercising it."""

import time
from typing import Any

from offload.models import Job
from offload.runner import JobRun


def run_noop(job: Job, run: JobRun) -> dict[str, Any]:
    return {"ok": True}


def run_sleep(job: Job, run: JobRun) -> dict[str, Any]:
    """Sleep `seconds` in small steps, reporting progress and honouring cancel."""
    seconds = float(job.params.get("seconds", 1))
    steps = max(1, int(seconds / 0.1))
    for step in range(steps):
        time.sleep(seconds / steps)
        run.progress(100.0 * (step + 1) / steps)
    return {"slept": seconds, "attempt": job.attempts}
