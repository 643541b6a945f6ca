"""`manage.py jobs list|retry|cancel`: the job list and its two actions, for operators in a terminal."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from offload import actions
from offload.jobs import JobConflict, kinds
from offload.models import Job, JobStatus


def _kind(value: str) -> str:
    if value not in kinds.names():
        raise CommandError(f"Unknown kind {value!r}; kinds are {', '.join(sorted(kinds.names()))}.")
    return value


def _job(pk: int) -> Job:
    job = Job.objects.filter(pk=pk).first()
    if job is None:
        raise CommandError(f"No job {pk}.")
    return job


class Command(BaseCommand):
    help = "List jobs, retry failed or cancelled ones, cancel queued or running ones."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        listing = commands.add_parser("list", help="the newest jobs first")
        listing.add_argument("--status", choices=JobStatus.values)
        listing.add_argument("--kind")
        listing.add_argument("--limit", type=int, default=50)
        retry = commands.add_parser("retry", help="run a failed or cancelled job again (or every failed one)")
        retry.add_argument("id", nargs="?", type=int)
        retry.add_argument("--failed", action="store_true", help="every failed job (of --kind)")
        retry.add_argument("--kind")
        cancel = commands.add_parser("cancel", help="cancel a queued job, or ask a running one to stop")
        cancel.add_argument("id", type=int)

    def handle(self, *args, **options) -> None:
        getattr(self, f"handle_{options['command']}")(options)

    def handle_list(self, options: dict) -> None:
        jobs = Job.objects.order_by("-created_at", "-id")
        if options["status"]:
            jobs = jobs.filter(status=options["status"])
        if options["kind"]:
            jobs = jobs.filter(kind=_kind(options["kind"]))
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        self.stdout.write(f"{'id':>8}  {'kind':<18} {'status':<10} {'progress':>8}  {'target':<12} error")
        for job in jobs[: options["limit"]]:
            progress = "" if job.progress is None else f"{job.progress:.0f}%"
            target = f"{job.target_type}:{job.target_id}" if job.target_type else "-"
            error = (job.error or "").splitlines()[0][:60] if job.error else ""
            self.stdout.write(f"{job.pk:>8}  {job.kind:<18} {job.status:<10} {progress:>8}  {target:<12} {error}")

    def handle_retry(self, options: dict) -> None:
        if options["failed"] == (options["id"] is not None):
            raise CommandError("Give a job id, or --failed.")
        if options["id"] is not None:
            targets = [_job(options["id"])]
        else:
            targets = Job.objects.filter(status=JobStatus.FAILED).order_by("id")
            if options["kind"]:
                targets = targets.filter(kind=_kind(options["kind"]))
        retried = 0
        for job in targets:
            try:
                actions.retry_job(None, job, reason="from the command line")
            except JobConflict as exc:
                if options["id"] is not None:
                    raise CommandError(str(exc)) from None
                self.stderr.write(f"job {job.pk}: {exc}")
            else:
                retried += 1
                self.stdout.write(f"job {job.pk} ({job.kind}) queued again")
        self.stdout.write(f"{retried} job{'s' if retried != 1 else ''} retried")

    def handle_cancel(self, options: dict) -> None:
        try:
            job = actions.cancel_job(None, _job(options["id"]))
        except JobConflict as exc:
            raise CommandError(str(exc)) from None
        if job.status == JobStatus.CANCELLED:
            self.stdout.write(f"job {job.pk} cancelled")
        else:
            self.stdout.write(f"job {job.pk} is running: its worker was asked to stop")
