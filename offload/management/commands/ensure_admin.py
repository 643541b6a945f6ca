"""manage.py ensure_admin: a superuser to log in with, and its API token."""

import json
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

PASSWORD_BYTES = 12


class Command(BaseCommand):
    help = (
        "Create the superuser (default: admin) when missing, with a new random password that is printed "
        "and stored nowhere else; print its API token."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin", help="Username of the superuser (default: admin).")
        parser.add_argument("--email", default="", help="Email for a newly created superuser.")
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="Give an existing user a new random password (and print it).",
        )
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print one JSON object instead of text."
        )

    def handle(self, *args, username: str, email: str, reset_password: bool, as_json: bool, **options) -> None:
        user_model = get_user_model()
        password = None
        promoted = False
        with transaction.atomic():
            user = user_model.objects.select_for_update().filter(**{user_model.USERNAME_FIELD: username}).first()
            created = user is None
            if user is None:
                password = secrets.token_urlsafe(PASSWORD_BYTES)
                user = user_model.objects.create_superuser(username, email, password)
            else:
                # The command promises an admin login: a demoted or disabled user gets it back.
                for flag in ("is_active", "is_staff", "is_superuser"):
                    if not getattr(user, flag):
                        setattr(user, flag, True)
                        promoted = True
                if reset_password:
                    password = secrets.token_urlsafe(PASSWORD_BYTES)
                    user.set_password(password)
                if promoted or reset_password:
                    user.save()
            token, _ = Token.objects.get_or_create(user=user)

        if as_json:
            payload = {"username": username, "password": password, "token": token.key, "created": created}
            self.stdout.write(json.dumps(payload))
            return
        if created:
            self.stdout.write(f'Superuser "{username}" created.')
        elif promoted:
            self.stdout.write(f'User "{username}" exists; made an active staff superuser again.')
        else:
            self.stdout.write(f'Superuser "{username}" exists.')
        if password is None:
            self.stdout.write("  password:  unchanged (pass --reset-password for a new one)")
        else:
            self.stdout.write(f"  password:  {password}")
        self.stdout.write(f"  API token: {token.key}")
