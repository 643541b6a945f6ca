"""System checks for the search lane's django-q2 cluster."""

from django.conf import settings
from django.core.checks import Error, register

RETRY_MARGIN_SECONDS = 5


def check_search_lane(app_configs=None, **kwargs) -> list:
    name = settings.SEARCH_Q_CLUSTER
    lane = settings.Q_CLUSTER.get("ALT_CLUSTERS", {}).get(name)
    if name == settings.Q_CLUSTER["name"]:
        # One cluster does everything: allowed for a small install, with no fast lane.
        return []
    if not isinstance(lane, dict):
        return [
            Error(
                f"Q_CLUSTER['ALT_CLUSTERS'] has no entry for the search lane {name!r}.",
                id="search.E001",
            )
        ]
    errors = []
    timeout, retry = lane.get("timeout"), lane.get("retry")
    if not isinstance(timeout, int) or not isinstance(retry, int) or retry < timeout + RETRY_MARGIN_SECONDS:
        errors.append(
            Error(
                f"The search lane's retry ({retry}) must exceed its timeout ({timeout}) by at least "
                f"{RETRY_MARGIN_SECONDS} s, or a running sync is delivered a second time.",
                id="search.E002",
            )
        )
    if "max_attempts" not in lane:
        errors.append(Error("The search lane's max_attempts must be set explicitly.", id="search.E003"))
    if settings.SEARCH_SYNC_TASK_TIMEOUT > (timeout or 0):
        errors.append(Error("SEARCH_SYNC_TASK_TIMEOUT must not exceed the search lane's timeout.", id="search.E004"))
    return errors


def register_all() -> None:
    """Register the checks above with Django (from SearchConfig.ready())."""
    register(check_search_lane)
