"""python manage.py reindex: rebuild the search index under a new collection and swap the alias."""

from django.core.management.base import BaseCommand, CommandError

from offload import jobs
from search import reindex
from search import typesense as ts
from search.progress import Progress


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
        shown = Progress(self.stdout, "reindex")

        def counts(stage: str, done: int, total: int) -> None:
            if stage == "copying":
                shown.update(done, total)
            elif stage == "replaying":
                shown.note(f"replaying {total} writes made during the copy")
            else:
                shown.note("swapping the alias")

        try:
            result = reindex.rebuild(batch_size=batch_size, counts=counts)
        except reindex.ReindexBusy as exc:
            raise CommandError(str(exc)) from exc
        except (ts.SearchUnavailable, *ts.ERRORS) as exc:
            raise CommandError(f"Typesense unavailable: {type(exc).__name__}: {exc}") from exc
        finally:
            shown.finish()
        self.stdout.write(
            self.style.SUCCESS(
                f"{result['collection']} is live: {result['documents']} documents, {result['replayed']} replayed, "
                f"{result['seconds']} s ({result['documents_per_second']} documents/s); "
                f"dropped {result['previous'] or 'nothing'}."
            )
        )
