"""Data for the reliability tests, written by the app itself (run in `manage.py shell` subprocesses)."""

import json

from django.contrib.auth.models import User
from django.db import transaction
from rest_framework.authtoken.models import Token

from offload.models import Library, MediaItem
from search.sync import mark_items

LOAD_USERS = 50
MARKER = "SEED-JSON "


def load_username(n: int) -> str:
    return f"load{n:02d}"


def seed_people() -> None:
    """alice, bob, staff and the load test's users, each with an API token; prints them as JSON."""
    people = {}
    names = [("alice", False), ("bob", False), ("staff", True)]
    names += [(load_username(n), False) for n in range(1, LOAD_USERS + 1)]
    for username, staff in names:
        user = User(username=username, is_staff=staff, is_superuser=staff)
        # No password: these people only use tokens, and hashing 50 passwords costs seconds.
        user.set_unusable_password()
        user.save()
        people[username] = {"id": user.pk, "token": Token.objects.create(user=user).key}
    print(MARKER + json.dumps(people))


def seed_libraries(spec_file: str) -> None:
    """Libraries with items for files already on disk, from JSON {username: {"path": ..., "files": [...]}}.

    Items are bulk-created, so their index writes are marked explicitly, as every bulk writer must.
    """
    with open(spec_file) as fh:
        spec = json.load(fh)
    made = {}
    with transaction.atomic():
        for username, library in spec.items():
            owner = User.objects.get(username=username)
            lib = Library.objects.create(name=f"{username}'s", path=library["path"], owner=owner)
            items = MediaItem.objects.bulk_create(
                [MediaItem(library=lib, relative_path=name) for name in library["files"]]
            )
            mark_items(item.pk for item in items)
            made[username] = {"library": lib.pk, "items": [item.pk for item in items]}
    print(MARKER + json.dumps(made))


def parse(stdout: str) -> dict:
    """The JSON a seed function printed."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise AssertionError(f"no seed output in:\n{stdout[-2000:]}")
