"""manage.py seed_demo: demo media files, a demo library and its scan. Safe to run again."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from offload import demo
from offload.lib.ffmpeg import FFmpegMissing
from offload.lib.paths import InvalidPath


class Command(BaseCommand):
    help = "Generate demo media files (when missing) and a demo library owned by a user, and queue its scan."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--owner", default="admin", help="Username owning the demo library (default: admin).")

    def handle(self, *args, owner: str, **options) -> None:
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: owner}).first()
        if user is None:
            raise CommandError(f'There is no user "{owner}": run "manage.py ensure_admin" first.')
        try:
            result = demo.seed_demo(user)
        except (demo.DemoError, FFmpegMissing, InvalidPath) as exc:
            raise CommandError(str(exc)) from exc

        if result.generated:
            self.stdout.write(f"Generated {len(result.generated)} demo file(s) in {result.folder}.")
        else:
            self.stdout.write(f"Demo files already in {result.folder}.")
        state = "created" if result.library_created else "already there"
        self.stdout.write(f'Library "{result.library.name}" (#{result.library.pk}) {state}.')
        state = "queued" if result.scan_created else f"already {result.scan.status}"
        self.stdout.write(f"Scan job #{result.scan.pk} {state}.")
