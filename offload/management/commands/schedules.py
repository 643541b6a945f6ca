from django.core.management.base import BaseCommand

from offload.jobs import sync_schedules


class Command(BaseCommand):
    help = "Create or update the periodic tasks (reaper, event pruning, search upkeep) from the settings."

    def handle(self, *args, **options) -> None:
        for name, outcome in sync_schedules():
            self.stdout.write(f"{outcome:9} {name}")
