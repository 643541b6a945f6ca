"""The API's side of the permission model (offload/permissions.py): each view names its rules."""

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from offload.permissions import Rule


def rule_for(view, method: str) -> Rule | None:
    """The rule a view declares for an unsafe request: by its viewset action, else by its HTTP method."""
    rules = getattr(view, "permission_rules", {})
    action = getattr(view, "action", None)
    return rules.get(action) if action else rules.get(method.lower())


class RulePermission(BasePermission):
    """Reads the view's `permission_rules` ({action or method: Rule}); a write without a rule is refused.

    A rule needed always is checked before the view runs on a list route. On an object's route,
    and for a rule needed only on another's object, it is checked once the view has fetched the
    object through access and calls `check_object_permissions`: an object the user cannot see
    answers 404 before any 403, so ids reveal nothing.
    """

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view) -> bool:
        method = request.method.lower()
        if request.method in SAFE_METHODS or method not in view.http_method_names or not hasattr(view, method):
            return True  # a read, or a method the view does not take (DRF answers 405)
        rule = rule_for(view, request.method)
        if rule is None:
            return False
        return rule.others_only or "pk" in view.kwargs or rule.allows(request.user)

    def has_object_permission(self, request: Request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        rule = rule_for(view, request.method)
        return rule is not None and rule.allows(request.user, obj)
