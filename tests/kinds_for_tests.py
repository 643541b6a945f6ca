"""Handlers for job kinds that exist only in tests, to drive the spine's failure paths."""

from offload.runner import JobDeferred, JobFailed, TransientJobError


def run_broken(job, run):
    raise JobFailed("The input is unusable: nothing to do.")


def run_flaky(job, run):
    if job.attempts < int(job.params.get("succeed_on", 2)):
        raise TransientJobError("upstream answered 503")
    return {"attempt": job.attempts}


def run_crashing(job, run):
    raise ZeroDivisionError("division by zero")


def run_deferring(job, run):
    raise JobDeferred("the scanner is busy", delay=30)
