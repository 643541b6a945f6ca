"""The permission model: which Django permission each state change needs.

Seeing is access's (offload/access.py); changing is this module's. Every state change names a
Django permission, the one the admin's model pages enforce, so a staff user's rights are the
same in the admin, the API and the admin's own pages: a view-only operator views everywhere
and changes nothing. The API reads these rules through offload.api.permissions, the admin
through `@admin.action(permissions=[...])` and `has_perm` on its own pages; docs/api.md lists
each endpoint's rule.

A rule is either always needed (steering the queues, changing a library) or needed only on
another person's object: alice cancels her own job, transcodes her own items and edits their
titles without any permission, while staff need the permission to do it to hers.
"""

from dataclasses import dataclass

from django.conf import settings

from offload.models import Job, Library, MediaItem


@dataclass(frozen=True)
class Rule:
    """A Django permission ("app_label.codename"), needed always or only on someone else's object."""

    permission: str
    others_only: bool = False
    # A setting that, when on, lets any signed-in user make the change without the permission.
    or_setting: str = ""

    def allows(self, user, obj=None) -> bool:
        """Whether the user may make this change (to this object, when the rule looks at one)."""
        if self.others_only and obj is not None and is_own(user, obj):
            return True
        if self.or_setting and user.is_authenticated and getattr(settings, self.or_setting):
            return True
        return bool(user.has_perm(self.permission))


# Cancel or retry a job someone else asked for (the requester acts on their own job freely).
ACT_ON_JOB = Rule("offload.change_job", others_only=True)
# Ask for a job on a library or item that is not one's own (an owner's and a member's are).
REQUEST_JOB = Rule("offload.add_job", others_only=True)
# Edit the descriptive fields of an item in a library that is not one's own.
EDIT_ITEM = Rule("offload.change_mediaitem", others_only=True)
# Rename a library or set its members.
CHANGE_LIBRARY = Rule("offload.change_library")
# Create a library on any folder (without it, only where OFFLOAD_USERS_CREATE_LIBRARIES allows).
CREATE_LIBRARY = Rule("offload.add_library", or_setting="OFFLOAD_USERS_CREATE_LIBRARIES")
# Pause, resume and cap the queues.
STEER_QUEUES = Rule("offload.change_queuecontrol")
# Reset a client's rate limits.
RESET_RATE_LIMITS = Rule("offload.reset_rate_limits")
# Manage a notification endpoint and its deliveries. Access shows a person their own endpoints
# only, so nobody reaches another's: the rule is here so that every write names one.
CHANGE_ENDPOINT = Rule("alerts.change_endpoint", others_only=True)


def is_own(user, obj) -> bool:
    """Whether the object is the user's: a job they asked for; a library (or its item) they own or are a member of."""
    if isinstance(obj, Job):
        return obj.requested_by_id is not None and obj.requested_by_id == user.pk
    if isinstance(obj, MediaItem):
        obj = obj.library
    if isinstance(obj, Library):
        return obj.owner_id == user.pk or obj.members.filter(pk=user.pk).exists()
    # Anything else a person owns (a notification endpoint).
    return getattr(obj, "owner_id", None) is not None and obj.owner_id == user.pk
