"""A kind's concurrency cap as people write it: the one parser the admin, `manage.py queues` and the spine share.

The rules, wherever a cap comes in: blank, `none`, `null` or `off` (any case) mean no cap; otherwise a
whole number written in ASCII digits, from 1 to the largest the column holds. Anything else is
refused with a reason that says so. The API's JSON field (`docs/api.md`, Queues) takes an integer
or null within the same bounds.
"""

import re

from django.db import connection

from offload.models import QueueControl

NO_CAP = frozenset({"", "none", "null", "off"})
# ASCII only: int() would take "1_000" or other scripts' digits, which nobody types as a cap.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+", re.ASCII)


class CapError(ValueError):
    """A cap that is not one: not a whole number, or out of bounds."""


def max_concurrency() -> int:
    """The largest cap the column holds (an integer on PostgreSQL): the API and the admin refuse more."""
    field = QueueControl._meta.get_field("concurrency")
    return connection.ops.integer_field_range(field.get_internal_type())[1]


def parse_cap(raw: str | int | None) -> int | None:
    """The cap `raw` names (None for no cap), or CapError with a reason a person reads."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise CapError(f"A cap is a whole number (blank or 'none' for no cap), not {raw!r}.")
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in NO_CAP:
            return None
        if not WHOLE_NUMBER.fullmatch(text):
            raise CapError(f"A cap is a whole number (blank or 'none' for no cap), not {raw!r}.")
        raw = int(text)
    if not 1 <= raw <= max_concurrency():
        raise CapError(f"A cap is at least 1 and at most {max_concurrency()} (blank or 'none' for no cap), not {raw}.")
    return raw
