"""The people in every test: alice owns things, bob is someone else, staff operates."""

import functools

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@functools.cache
def password_hash(username: str) -> str:
    """The hash of `<username>-password`, made once per run: a real hash costs 0.4 s each time."""
    return make_password(f"{username}-password")


def make_user(username: str, *, staff: bool = False) -> User:
    user = User.objects.create(username=username, email=f"{username}@example.com", password=password_hash(username))
    if staff:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user


def api_client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def staff_client_with(username: str, *codenames: str):
    """A logged-in Django test client for a staff member (not a superuser) with only these offload permissions."""
    from django.contrib.auth.models import Permission
    from django.test import Client

    user = make_user(username)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames, content_type__app_label="offload"))
    client = Client()
    client.force_login(user)
    return client
