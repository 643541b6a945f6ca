"""`manage.py queues [pause|resume KIND] [--cap KIND N]`: the queues per kind, and the operator's holds."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from offload import actions
from offload.caps import CapError, parse_cap
from offload.jobs import UnknownJobKind, queue_rows


def _seconds(value: float | None, none: str) -> str:
    if value is None:
        return none
    return f"{value / 60:.1f} min" if value >= 120 else f"{value:.0f} s"


class Command(BaseCommand):
    help = "Show each kind's queue (lane, state, figures, drain forecast); pause, resume or cap a kind."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("change", nargs="?", choices=["pause", "resume"])
        parser.add_argument("kind", nargs="?")
        parser.add_argument("--cap", nargs=2, metavar=("KIND", "N"), help="at most N jobs of KIND at once ('none')")

    def handle(self, *args, **options) -> None:
        try:
            if options["change"]:
                if not options["kind"]:
                    raise CommandError(f"Which kind to {options['change']}?")
                change = actions.pause_kind if options["change"] == "pause" else actions.resume_kind
                change(None, options["kind"])
                self.stdout.write(f"{options['kind']}: {options['change']}d")
            if options["cap"]:
                kind, value = options["cap"]
                try:
                    cap = parse_cap(value)
                except CapError as exc:
                    raise CommandError(str(exc)) from None
                actions.cap_kind(None, kind, cap)
                self.stdout.write(f"{kind}: {'no cap' if cap is None else f'at most {cap} at a time'}")
        except UnknownJobKind as exc:
            raise CommandError(f"Unknown kind {exc}.") from None
        self.stdout.write(
            f"{'kind':<18} {'lane':<7} {'state':<7} {'cap':>4} {'queued':>7} {'running':>7} "
            f"{'oldest':>9} {'done/15m':>8}  empties in"
        )
        for row in queue_rows():
            self.stdout.write(
                f"{row['kind']:<18} {row['lane']:<7} {'paused' if row['paused'] else 'running':<7} "
                f"{row['concurrency'] or '-':>4} {row['queued']:>7} {row['running']:>7} "
                f"{_seconds(row['oldest_queued_seconds'], '-'):>9} {row['finished_last_15m']:>8}  "
                f"{_seconds(row['drain_seconds'], 'not draining')}"
            )
