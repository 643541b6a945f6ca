"""Template filters that write spans of time as the admin writes every duration ("15 s", "3 min 5 s").

Django's `timesince` counts in whole minutes ("0 minutes" after 15 s); these use
offload.admin.formatting.duration, as the job pages and live.js do. Loaded as `{% load offload_time %}`
(the library is named in config/settings.py's TEMPLATES).
"""

from datetime import datetime

from django import template
from django.utils import timezone

from offload.admin.formatting import duration

register = template.Library()


@register.filter
def seconds(value: float | None) -> str:
    """A number of seconds as a duration: 386 → "6 min 26 s"."""
    return duration(None if value is None else float(value))


@register.filter
def since(value: datetime | None, now: datetime | None = None) -> str:
    """How long from value to now (or to the given time), as a duration; "—" without a time."""
    if value is None:
        return "—"
    return duration(max(0.0, ((now or timezone.now()) - value).total_seconds()))
