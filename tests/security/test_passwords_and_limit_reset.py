"""Passwords and the admin's rate-limit reset."""

import pytest
from django.test import Client


@pytest.mark.parametrize("password", ["short", "123456789012345", "password1234", "alice@example.com"])
def test_weak_passwords_are_refused(alice, password):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password(password, alice)


def test_resetting_rate_limits_needs_a_permission_staff_status_alone_does_not_give(db, alice, settings):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from offload.lib import limits
    from tests.support.people import make_user

    operator = make_user("operator")
    operator.is_staff = True
    operator.save()
    client = Client()
    client.force_login(operator)
    url = reverse("admin:offload_cache")
    assert client.get(url).status_code == 200
    assert "Reset one client" not in client.get(url).content.decode()
    limits.acquire("api_user", f"user:{alice.pk}", 1, 60)
    assert client.post(url, {"who": f"user:{alice.pk}"}).status_code == 403
    assert not limits.acquire("api_user", f"user:{alice.pk}", 1, 60).allowed
    operator.user_permissions.add(Permission.objects.get(codename="reset_rate_limits"))
    operator = type(operator).objects.get(pk=operator.pk)  # permissions are cached per object
    client.force_login(operator)
    assert client.post(url, {"who": f"user:{alice.pk}", "post": "yes"}).status_code == 302
    assert limits.acquire("api_user", f"user:{alice.pk}", 1, 60).allowed
