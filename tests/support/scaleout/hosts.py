"""Worker processes started as if on other machines: each under a hostname of its own, where allowed."""

import functools
import re
import subprocess

from django_q.humanhash import humanize

from tests.support.cluster import QCluster

# django-q2's worker logs "<process> processing <task name> '<function>'" as it starts each task.
PROCESSING = re.compile(r"processing (\S+) 'offload\.jobs\.runner\.execute'")


@functools.cache
def own_hostnames_allowed() -> bool:
    """Whether this machine lets a child run in a UTS namespace (root, or a permissive container)."""
    try:
        return subprocess.run(["unshare", "--uts", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def as_host(hostname: str, command: list[str]) -> list[str]:
    """The command, run under its own hostname when the system allows it (as on a second machine)."""
    if not own_hostnames_allowed():
        return command
    return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *command]


class HostQCluster(QCluster):
    """`manage.py qcluster` as another host would run it: same database and queue, its own hostname."""

    def __init__(self, hostname: str, log_path, **env: str) -> None:
        super().__init__(log_path, **env)
        self.hostname = hostname

    def command(self) -> list[str]:
        return as_host(self.hostname, super().command())

    def task_names(self) -> list[str]:
        """The django-q2 task names this cluster started, in order, from its log."""
        return PROCESSING.findall(self.log())


def task_name(task_id: str) -> str:
    """The name django-q2 gives (and logs for) the task with this id."""
    return humanize(task_id)
