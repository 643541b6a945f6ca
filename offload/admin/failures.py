"""The Failures page: failed jobs grouped by what went wrong, and the operator's "retry this group".

A group's fingerprint is (kind, exception type, normalised message): ids, numbers, paths
and quoted names are blanked out of the reason, so "item 12 not found at /a/b.mkv" and
"item 40 not found at /c/d.mkv" are one problem with a count of two.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join

from offload import actions
from offload.admin import readable
from offload.admin.badges import job_link
from offload.admin.confirm import PREVIEW_ROWS
from offload.admin.snapshot_cache import forget_snapshot
from offload.jobs import IdempotencyKeyReused, JobConflict, classify, fingerprint
from offload.models import Job, JobStatus

__all__ = [
    "ALL_FAILED",
    "FailureGroup",
    "RetryOutcome",
    "chosen_for_retry",
    "classify",
    "failure_groups",
    "fingerprint",
    "retry_group",
]

# Groups listed: the biggest; the rest are counted.
SCAN_LIMIT = 200
# Jobs retried by one click; a bigger group takes more clicks, each a bounded request.
RETRY_LIMIT = 500
SAMPLE = 5
# The newest failures read for each group's example and sample ids.
SAMPLE_SCAN = 1000
# Failed jobs stored before their group was (an upgrade, a row written by hand) are classified
# this many at a time, once.
CLASSIFY_BATCH = 2000


@dataclass
class FailureGroup:
    fingerprint: str
    kind: str
    exception: str
    message: str
    # One job's own reason, unblanked, as an example.
    example: str
    last_failed_at: datetime | None
    first_failed_at: datetime | None
    count: int = 0
    sample_ids: list[int] = field(default_factory=list)
    # The sample jobs' targets, (type, id), in the same order.
    sample_targets: list[tuple[str, int]] = field(default_factory=list)

    def job_ids(self, limit: int) -> list[int]:
        """The group's newest failed jobs, at most limit (the (status, failure_group) index)."""
        return list(
            Job.objects.filter(status=JobStatus.FAILED, failure_group=self.fingerprint)
            .order_by("-finished_at", "-id")
            .values_list("pk", flat=True)[:limit]
        )


def classify_unclassified() -> int:
    """Give failed jobs without a group theirs (each once, in batches); answer how many."""
    done = 0
    while True:
        rows = list(
            Job.objects.filter(status=JobStatus.FAILED, failure_group="")
            .order_by()
            .values_list("pk", "kind", "error")[:CLASSIFY_BATCH]
        )
        if not rows:
            return done
        found: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        for pk, kind, error in rows:
            exception, message = classify(error)
            found[(fingerprint(kind, exception, message), exception, message)].append(pk)
        for (key, exception, message), pks in found.items():
            Job.objects.filter(pk__in=pks, status=JobStatus.FAILED).update(
                failure_group=key, failure_exception=exception, failure_message=message
            )
        done += len(rows)


def failure_groups() -> list[FailureGroup]:
    """Groups of failed jobs, biggest first (at most SCAN_LIMIT of them): grouped in SQL on the stored group."""
    classify_unclassified()
    # An index-only scan of the partial index on failed jobs (job_failure_groups).
    rows = list(
        Job.objects.filter(status=JobStatus.FAILED)
        .values("failure_group", "kind", "failure_exception", "failure_message")
        .annotate(n=Count("pk"), last=Max("finished_at"), first=Min("finished_at"))
        .order_by("-n", "kind", "failure_message")[:SCAN_LIMIT]
    )
    groups = [
        FailureGroup(
            row["failure_group"],
            row["kind"],
            row["failure_exception"],
            row["failure_message"],
            "",
            row["last"],
            row["first"],
            row["n"],
        )
        for row in rows
    ]
    # Examples and a few ids per group, from the newest failures (the (status, finished_at) index):
    # a group with none among them is an old one, shown without.
    by_key = {g.fingerprint: g for g in groups}
    for pk, key, error, target_type, target_id in (
        Job.objects.filter(status=JobStatus.FAILED)
        .order_by("-finished_at", "-id")
        .values_list("pk", "failure_group", "error", "target_type", "target_id")[:SAMPLE_SCAN]
    ):
        group = by_key.get(key)
        if group is not None and len(group.sample_ids) < SAMPLE:
            group.sample_ids.append(pk)
            group.sample_targets.append((target_type, target_id))
            group.example = group.example or error or ""
    return groups


def name_samples(groups: list[FailureGroup]) -> None:
    """Give each group `examples_html`: its sample jobs, each with its target by name (two queries for all)."""
    names = readable.target_names(target for g in groups for target in g.sample_targets)
    for g in groups:
        g.examples_html = format_html_join(
            "<br>",
            "{} {}",
            (
                (job_link(Job(pk=pk)), readable.target_link(*target, names) if target[0] else "")
                for pk, target in zip(g.sample_ids, g.sample_targets, strict=True)
            ),
        )


@dataclass
class RetryOutcome:
    retried: int = 0
    refused: list[str] = field(default_factory=list)
    # Jobs of the group left for another click (beyond RETRY_LIMIT).
    remaining: int = 0


# The key that stands for every failed job, whatever its group ("Retry all failed").
ALL_FAILED = "all"


def chosen_for_retry(key: str) -> tuple[list[int], int]:
    """The ids a retry of this group (or of ALL_FAILED) queues again, at most RETRY_LIMIT, and how many there are."""
    if key == ALL_FAILED:
        failed = Job.objects.filter(status=JobStatus.FAILED).order_by("pk")
        return list(failed.values_list("pk", flat=True)[:RETRY_LIMIT]), failed.count()
    group = next((g for g in failure_groups() if g.fingerprint == key), None)
    if group is None:
        return [], 0
    return group.job_ids(RETRY_LIMIT), group.count


def retry_group(user, key: str) -> RetryOutcome:
    """Retry every failed job of the group, or every failed job (at most RETRY_LIMIT); each goes to the admin log."""
    chosen, total = chosen_for_retry(key)
    outcome = RetryOutcome()
    if not chosen:
        return outcome
    outcome.remaining = total - len(chosen)
    for job in Job.objects.filter(pk__in=chosen, status=JobStatus.FAILED).order_by("pk"):
        try:
            actions.retry_job(user, job, reason=f"failure group {key}")
        except (JobConflict, IdempotencyKeyReused) as exc:
            outcome.refused.append(str(exc))
        else:
            outcome.retried += 1
    return outcome


# --- Views (routed with the Operations section, offload/admin/dashboard.py) ---------


def failures_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """Failed jobs grouped by fingerprint, each group with a retry button."""
    if not request.user.has_perm("offload.view_job"):
        return HttpResponseForbidden("You may not view jobs.")
    groups = failure_groups()
    name_samples(groups)
    context = {
        **site.each_context(request),
        "title": "Failed jobs by cause",
        "groups": groups,
        "failed_jobs": sum(g.count for g in groups),
        "scan_limit": SCAN_LIMIT,
        "retry_limit": RETRY_LIMIT,
        "all_failed": ALL_FAILED,
        "can_retry": request.user.has_perm("offload.change_job"),
    }
    return TemplateResponse(request, "admin/offload/failures.html", context)


def retry_group_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """Retry the failed jobs of one group; every retry is written to the admin log."""
    if not request.user.has_perm("offload.change_job"):
        return HttpResponseForbidden("You may not retry jobs.")
    key = request.POST.get("fingerprint", "")
    if request.POST.get("post") != "yes":
        return _confirm_retry_group(site, request, key)
    outcome = retry_group(request.user, key)
    if outcome.retried:
        messages.success(request, f"{outcome.retried} job{'s' if outcome.retried != 1 else ''} queued again.")
    else:
        messages.warning(request, "No job of that group could be retried: it may have been retried already.")
    if outcome.remaining:
        messages.info(request, f"{outcome.remaining} more job(s) in the group: retry it again for the next batch.")
    for reason in outcome.refused[:10]:
        messages.warning(request, reason)
    forget_snapshot()
    return HttpResponseRedirect(reverse("admin:offload_failures"))


def _confirm_retry_group(site: AdminSite, request: HttpRequest, key: str) -> HttpResponse:
    """How many jobs of the group a retry queues again, and the first of them by name."""
    chosen, total = chosen_for_retry(key)
    if not chosen:
        messages.warning(request, "No failed job is left there: it may have been retried already.")
        return HttpResponseRedirect(reverse("admin:offload_failures"))
    preview = list(Job.objects.filter(pk__in=chosen[:PREVIEW_ROWS]).order_by("-id"))
    if key == ALL_FAILED:
        question = "Queue every failed job again, whatever its cause?"
    else:
        group = next(g for g in failure_groups() if g.fingerprint == key)
        question = f"Queue these failed {group.kind} jobs again? Their cause: {group.exception}: {group.message}"
    if total > RETRY_LIMIT:
        question += f" (the first {RETRY_LIMIT} of {total}; retry again for the next batch)"
    context = {
        **site.each_context(request),
        "title": f"Retry {len(chosen)} job{'s' if len(chosen) != 1 else ''}?",
        "question": question,
        "count": len(chosen),
        "more": max(0, len(chosen) - len(preview)),
        "button": "Yes, retry them",
        "back": reverse("admin:offload_failures"),
        "back_label": "Failures",
        "jobs": readable.name_targets(preview),
        "hidden": [("fingerprint", key), ("post", "yes")],
        "form_action": request.path,
    }
    return TemplateResponse(request, "admin/offload/confirm.html", context)
