"""python manage.py search_drift [--repair]: compare the search index with the database."""

from django.core.management.base import BaseCommand, CommandError

from search import drift
from search import typesense as ts
from search.progress import Progress


class Command(BaseCommand):
    help = "Report items missing from, orphaned in, or stale in the search index; --repair rewrites them."

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true", help="Re-index every drifted item now.")

    def handle(self, *args, repair=False, **options):
        shown = Progress(self.stdout, "search_drift")

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "exporting":
                shown.note("exporting the index")
            else:
                shown.update(done, total)

        try:
            report = drift.find_drift(progress)
        except (ts.SearchUnavailable, *ts.ERRORS) as exc:
            raise CommandError(f"Typesense unavailable: {type(exc).__name__}: {exc}") from exc
        finally:
            shown.finish()
        self.stdout.write(
            f"collection {report.collection or '(none)'}: {report.indexed} documents, "
            f"{report.in_database} items, {report.pending} writes in flight"
        )
        for name in ("missing", "orphaned", "stale"):
            ids = getattr(report, name)
            sample = ", ".join(str(i) for i in ids[: drift.SAMPLE])
            more = " …" if len(ids) > drift.SAMPLE else ""
            self.stdout.write(f"{name}: {len(ids)}" + (f" ({sample}{more})" if ids else ""))
        if not repair:
            return
        try:
            repaired = drift.repair(report)
        except ts.ERRORS as exc:
            raise CommandError(f"Typesense unavailable: {type(exc).__name__}: {exc}") from exc
        after = drift.find_drift()
        self.stdout.write(self.style.SUCCESS(f"repaired {repaired}; drift left: {after.total}"))
