"""Periodic tasks: registered by each app in its ready(), written to django-q2 by `manage.py schedules`.

A schedule's interval and lane come from the settings, read when the command runs, never
frozen into a migration: change the setting, run the command (make run and the production
start do, after `migrate`), and the schedule follows. `post_migrate` would not do: a plain
restart runs no migration.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django_q.models import Schedule


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
