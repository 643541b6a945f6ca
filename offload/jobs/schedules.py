"""Periodic tasks: registered by each app in its ready(), written to django-q2 by `manage.py schedules`.

A schedule's interval and lane come from the settings, read when the command runs, never
frozen into a migration: change the setting, run the command (make run and the production
start do, after `migrate`), and the schedule follows. `post_migrate` would not do: a plain
restart runs no migration.

django-q2 keeps no result of these tasks (Offload stores none), so its own "last run" is
always empty. Each schedule's last run is kept instead in the state Redis, written by the
worker that ran it (`note_start` and `record_run`, on django-q2's pre_execute and
post_execute_in_worker signals, which the worker sends with the same task dict).
"""

import ast
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_q.models import Schedule
from django_q.tasks import async_task
from redis.exceptions import RedisError

from offload.jobs.queue import broker_for
from offload.lib.redis_state import key, state_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    # The django-q2 Schedule fields (func, schedule_type, minutes, cluster …), read at sync time.
    fields: Callable[[], dict[str, Any]]


_registry: dict[str, Periodic] = {}


def register_schedule(name: str, fields: Callable[[], dict[str, Any]]) -> None:
    """Keep a django-q2 schedule of this name with these fields (from an app's ready())."""
    _registry[name] = Periodic(name, fields)


def registered() -> list[Periodic]:
    return list(_registry.values())


def sync_schedules() -> list[tuple[str, str]]:
    """Create or update every registered schedule; answer (name, "created" | "updated" | "unchanged")."""
    outcomes = []
    with transaction.atomic():
        for periodic in _registry.values():
            wanted = {"repeats": -1, **periodic.fields()}
            row = Schedule.objects.select_for_update().filter(name=periodic.name).first()
            if row is None:
                Schedule.objects.create(name=periodic.name, **wanted)
                outcomes.append((periodic.name, "created"))
                continue
            changed = [field for field, value in wanted.items() if getattr(row, field) != value]
            if changed:
                for field in changed:
                    setattr(row, field, wanted[field])
                row.save(update_fields=changed)
            outcomes.append((periodic.name, "updated" if changed else "unchanged"))
    return outcomes


def _runs_key() -> str:
    return key("schedule-runs")


def note_start(sender, task: dict[str, Any], **kwargs) -> None:
    """Stamp when the worker starts the task (a receiver of pre_execute): its "started" is when it was queued."""
    task["ran_at"] = timezone.now()


def record_run(sender, task: dict[str, Any], **kwargs) -> None:
    """Keep when a schedule's task ran and how it ended (a receiver of post_execute_in_worker)."""
    name = task.get("group")
    if name not in _registry or "stopped" not in task:
        return
    error = "" if task.get("success") else str(task.get("result") or "").strip().splitlines()[:1]
    started = task.get("ran_at") or task.get("started")
    run = {
        "started": started.isoformat() if started else None,
        "stopped": task["stopped"].isoformat(),
        "success": bool(task.get("success")),
        "error": error[0] if error else "",
    }
    try:
        state_redis().hset(_runs_key(), name, json.dumps(run))
    except (RedisError, OSError) as exc:
        log.warning("could not keep the last run of schedule %s: %s", name, exc)


def last_runs() -> dict[str, dict[str, Any]]:
    """Schedule name → its last run ({"started", "stopped", "success", "error"}); empty when Redis is away."""
    try:
        raw = state_redis().hgetall(_runs_key())
    except (RedisError, OSError) as exc:
        log.warning("could not read the schedules' last runs: %s", exc)
        return {}
    runs = {}
    for name, value in raw.items():
        run = json.loads(value)
        run["started"] = parse_datetime(run["started"]) if run.get("started") else None
        run["stopped"] = parse_datetime(run["stopped"])
        runs[name.decode() if isinstance(name, bytes) else name] = run
    return runs


def run_now(schedule: Schedule) -> str:
    """Queue the schedule's task at once on its lane, as its next due time would; the schedule stays as it is."""
    args = ast.literal_eval(schedule.args) if schedule.args else ()
    kwargs = ast.literal_eval(schedule.kwargs) if schedule.kwargs else {}
    # The group names the schedule, as django-q2's scheduler does: record_run files the run under it.
    queue = schedule.cluster or settings.Q_CLUSTER["name"]
    return async_task(schedule.func, *args, group=schedule.name, broker=broker_for(queue), **kwargs)
