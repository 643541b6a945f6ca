"""What the admin's pages share: job status badges and progress bars, and the actions of the registered kinds."""

from django.contrib import messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.html import format_html

from offload import actions, audit
from offload.jobs import kinds
from offload.models import Job


def report_queued(modeladmin, request, outcomes: list[tuple[Job, bool]]) -> None:
    audit.log_job_action(request.user, [job for job, created in outcomes if created], "Queued.", added=True)
    queued = sum(1 for _, created in outcomes if created)
    already = len(outcomes) - queued
    text = f"{queued} job{'s' if queued != 1 else ''} queued."
    if already:
        text += f" {already} already active."
    modeladmin.message_user(request, text, messages.SUCCESS)


def progress_bar(job: Job) -> str:
    value = 0 if job.progress is None else job.progress
    label = "—" if job.progress is None else f"{job.progress:.0f}%"
    return format_html(
        '<progress class="offload-progress" data-job="{}" max="100" value="{}">{}</progress> '
        '<span class="offload-progress-label" data-job="{}">{}</span>',
        job.pk,
        value,
        label,
        job.pk,
        label,
    )


class LiveJobsMedia:
    """The script that keeps statuses and progress bars current over the websocket."""

    js = ["offload/live.js"]


def status_badge(job: Job) -> str:
    return format_html(
        '<span class="offload-status offload-status-{}" data-job="{}">{}</span>', job.status, job.pk, job.status
    )


class JobActionsMixin:
    """One admin action per kind registered on this model's target type, for whoever may ask for it."""

    def get_actions(self, request):
        found = super().get_actions(request)
        for kind in kinds.requestable(self.model.JOB_TARGET_TYPE):
            if kind.may_request(request.user):
                found[kind.action] = (_job_action(kind), kind.action, kind.label or kind.name)
        return found


def _job_action(kind: kinds.JobKind):
    def action(modeladmin, request, queryset):
        if kind.params and not request.POST.get("confirm"):
            return _ask_for_params(modeladmin, request, queryset, kind)
        given = {choice.name: request.POST.get(choice.name, "") for choice in kind.params}
        outcomes = []
        for target in queryset:
            try:
                outcomes.append(actions.request_job(request.user, kind.name, target, given))
            except ValueError as exc:
                modeladmin.message_user(request, f"{target}: {exc}", messages.ERROR)
        if outcomes:
            report_queued(modeladmin, request, outcomes)
        return None

    action.__name__ = kind.action
    return action


def _ask_for_params(modeladmin, request, queryset, kind: kinds.JobKind):
    """An intermediate page: one choice per parameter, then one job per selected row."""
    params = [
        {
            "name": choice.name,
            "help_text": choice.help_text,
            "choices": [(value, choice.describe(value) if choice.describe else value) for value in choice.choices()],
            "selected": request.POST.get(choice.name, ""),
        }
        for choice in kind.params
    ]
    return TemplateResponse(
        request,
        "admin/offload/job_params_confirm.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": kind.label.rstrip("…") or kind.name,
            "kind": kind,
            "params": params,
            "items": queryset,
            "count": queryset.count(),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": modeladmin.model._meta,
        },
    )
