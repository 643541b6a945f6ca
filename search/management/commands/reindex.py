"""python manage.py reindex: rebuild the search index under a new collection and swap the alias."""

from django.core.management.base import BaseCommand, CommandError

from offload import jobs
from search import reindex
from search import typesense as ts


class Command(BaseCommand):
    help = (
        "Build a new Typesense collection from the database, replay the writes made meanwhile, "
        "swap the alias and drop the old collection. Searches keep answering throughout."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None, help="Documents per import request.")
        parser.add_argument(
            "--queue", action="store_true", help="Queue a search.reindex job for the workers instead of running here."
        )

    def handle(self, *args, batch_size=None, queue=False, **options):
        if queue:
            job, created = jobs.enqueue("search.reindex")
            self.stdout.write(f"Reindex job {job.pk} {'queued' if created else 'already active'}.")
            return
        last = [-10.0]

        def progress(percent: float) -> None:
            if percent - last[0] >= 10 or percent >= 100:
                last[0] = percent
                self.stdout.write(f"  {percent:5.1f}%")

        try:
            result = reindex.rebuild(batch_size=batch_size, progress=progress)
        except reindex.ReindexBusy as exc:
            raise CommandError(str(exc)) from exc
        except (ts.SearchUnavailable, *ts.ERRORS) as exc:
            raise CommandError(f"Typesense unavailable: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"{result['collection']} is live: {result['documents']} documents, {result['replayed']} replayed, "
                f"{result['seconds']} s ({result['documents_per_second']} documents/s); "
                f"dropped {result['previous'] or 'nothing'}."
            )
        )
