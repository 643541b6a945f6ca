"""What a websocket user's event stream holds, read from the JobEvent log."""

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from rest_framework.authtoken.models import Token

from offload.access import job_visibility
from offload.models import JobEvent

# Replays are read and sent a page at a time: a long absence costs no more memory than a short one.
REPLAY_PAGE = 1000


def still_authorized(
    user_id: int, staff: bool, *, token_key: str | None = None, session_key: str | None = None
) -> bool:
    """Whether an open socket's user may still see what they saw when it opened.

    False when the user was deactivated or changed staff status, their token was revoked, or
    their session ended (logout, or a new login in its place).
    """
    user = get_user_model().objects.filter(pk=user_id, is_active=True).values_list("is_staff", flat=True).first()
    if user is None or bool(user) != staff:
        return False
    if token_key is not None and not Token.objects.filter(key=token_key, user_id=user_id).exists():
        return False
    if session_key is not None:
        session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
        if session.get(SESSION_KEY) != str(user_id):
            return False
    return True


def _stream(user):
    return JobEvent.objects.filter(job_visibility(user).q(prefix="job__"))


def latest_seq(user) -> int:
    """The newest seq in the user's stream, 0 when there is none."""
    return _stream(user).order_by("-seq").values_list("seq", flat=True).first() or 0


def events_between(user, after: int, upto: int | None = None) -> list[dict[str, Any]]:
    """The stream's first REPLAY_PAGE events with after < seq <= upto, as websocket messages, oldest first."""
    events = _stream(user).filter(seq__gt=after)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    rows = events.order_by("seq").values_list("seq", "event", "payload")[:REPLAY_PAGE]
    return [message(seq, event, payload) for seq, event, payload in rows]


def message(seq: int, event: str, job: dict[str, Any]) -> dict[str, Any]:
    """The websocket job message of docs/api.md."""
    return {"type": "job", "event": event, "seq": seq, "job": job}


def recent_events(user, limit: int = 15) -> list[JobEvent]:
    """The newest state changes (no progress ticks) in the user's stream, for the admin index."""
    return list(_stream(user).exclude(event="progress").order_by("-seq")[:limit])
