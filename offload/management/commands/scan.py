"""`manage.py scan LIBRARY [--wait]`: queue a library's scan; with --wait, follow it and its pipeline."""

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from offload import jobs
from offload.models import ACTIVE_STATUSES, Job, JobPriority, JobStatus, Library, MediaItem

BAR_WIDTH = 30


def progress_bar(fraction: float, label: str) -> str:
    """`[#####-----]  50%  label`, for a terminal line."""
    fraction = max(0.0, min(1.0, fraction))
    filled = round(fraction * BAR_WIDTH)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction * 100:3.0f}%  {label}"


class Command(BaseCommand):
    help = "Scan a library (by id or name); --wait follows the scan and the probes it queues with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("library", help="the library's id or name")
        parser.add_argument("--wait", action="store_true", help="wait for the scan and its pipeline")
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between looks (default 0.5)")

    def handle(self, *args, **options) -> None:
        library = self._library(options["library"])
        # Asked for by a person at a terminal: it goes before any backlog.
        scan, created = jobs.enqueue("library.scan", target=library, user=library.owner, priority=JobPriority.PERSON)
        self.stdout.write(f"{'queued' if created else 'already active'}: library.scan job {scan.pk} for {library}")
        if not options["wait"]:
            return
        scan = self._follow_scan(scan, options["interval"])
        if scan.status != JobStatus.SUCCEEDED:
            raise CommandError(f"The scan {scan.status}: {scan.error or 'no reason given'}")
        self._follow_pipeline(library, scan, options["interval"])

    def _library(self, given: str) -> Library:
        found = Library.objects.filter(pk=int(given)) if given.isdigit() else Library.objects.filter(name=given)
        libraries = list(found[:2])
        if len(libraries) != 1:
            raise CommandError(f"No library {given!r}." if not libraries else f"Several libraries are named {given!r}.")
        return libraries[0]

    def _draw(self, line: str, *, last: bool = False) -> None:
        # On a terminal the bar redraws in place; in a log each look is a line.
        if self.stdout.isatty():
            self.stdout.write("\r" + line, ending="\n" if last else "")
            self.stdout.flush()
        else:
            self.stdout.write(line)

    def _follow_scan(self, scan: Job, interval: float) -> Job:
        shown = None
        while True:
            scan.refresh_from_db()
            done = scan.status not in ACTIVE_STATUSES
            fraction = 1.0 if scan.status == JobStatus.SUCCEEDED else (scan.progress or 0) / 100
            line = progress_bar(fraction, f"scan {scan.status}")
            if done or line != shown:
                self._draw(line, last=done)
                shown = line
            if done:
                return scan
            time.sleep(interval)

    def _follow_pipeline(self, library: Library, scan: Job, interval: float) -> None:
        items = MediaItem.objects.filter(library=library).values_list("pk", flat=True)
        # The stages the scan queued: jobs on the library's items since the scan started.
        stages = Job.objects.filter(target_type="media", target_id__in=items, created_at__gte=scan.created_at)
        shown = None
        while True:
            total = stages.count()
            active = stages.filter(status__in=ACTIVE_STATUSES).count()
            failed = stages.filter(status=JobStatus.FAILED).count()
            label = f"pipeline: {total - active} of {total} jobs done" + (f", {failed} failed" if failed else "")
            if active == 0:
                self._draw(progress_bar(1.0, label), last=True)
                return
            line = progress_bar((total - active) / total, label)
            if line != shown:
                self._draw(line)
                shown = line
            time.sleep(interval)
