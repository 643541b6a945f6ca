"""Handlers for job kinds that exist only in tests, to drive the spine's failure paths."""

from collections.abc import Iterator
from contextlib import contextmanager

from offload.jobs import JobDeferred, JobFailed, JobKind, TransientJobError, kinds


@contextmanager
def registered(*added: JobKind) -> Iterator[None]:
    """These kinds are registered inside the block; whatever they replaced comes back after."""
    before = {kind.name: kinds._registry.get(kind.name) for kind in added}
    kinds.register(*added)
    try:
        yield
    finally:
        for name, kind in before.items():
            if kind is None:
                kinds.unregister(name)
            else:
                kinds.register(kind)


def run_broken(job, target, run):
    raise JobFailed("The input is unusable: nothing to do.")


def run_flaky(job, target, run):
    if job.attempts < int(job.params.get("succeed_on", 2)):
        raise TransientJobError("upstream answered 503")
    return {"attempt": job.attempts}


def run_crashing(job, target, run):
    raise ZeroDivisionError("division by zero")


def run_deferring(job, target, run):
    raise JobDeferred("the scanner is busy", delay=30)
