"""The admin log of what people did to jobs and queues: cancels, retries, jobs queued from the admin, pauses and caps.

Entries are written in the caller's transaction, so a refused or rolled-back action leaves
none. They show in the admin's "Recent actions" and in each job's history.
"""

from collections.abc import Iterable

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry

from offload.models import Job, QueueControl


def log_job_action(user, jobs: Iterable[Job], message: str, *, added: bool = False, deleted: bool = False) -> None:
    """One admin-log entry per job for a signed-in user (there is nobody to name otherwise)."""
    if user is None or not user.is_authenticated:
        return
    jobs = list(jobs)
    if jobs:
        flag = DELETION if deleted else ADDITION if added else CHANGE
        LogEntry.objects.log_actions(user.pk, jobs, flag, change_message=message)


def log_queue_action(user, control: QueueControl, message: str) -> None:
    """One admin-log entry for a change to a kind's queue (pause, resume, cap)."""
    if user is None or not user.is_authenticated:
        return
    LogEntry.objects.log_actions(user.pk, [control], CHANGE, change_message=message)
