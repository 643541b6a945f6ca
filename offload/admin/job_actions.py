"""The job kinds as admin actions: one per kind registered on a model's target type, with its parameters page."""

from typing import Any

from django.contrib import messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from offload import actions, audit
from offload import permissions as rules
from offload.admin.badges import job_links
from offload.jobs import kinds
from offload.models import Job


def report_queued(modeladmin, request, outcomes: list[tuple[Job, bool]]) -> None:
    audit.log_job_action(request.user, [job for job, created in outcomes if created], "Queued.", added=True)
    queued = sum(1 for _, created in outcomes if created)
    already = len(outcomes) - queued
    text = f"{queued} job{'s' if queued != 1 else ''} queued."
    if already:
        text += f" {already} already active."
    # The message links every job it speaks of, new or already active.
    jobs = [job for job, _ in outcomes]
    modeladmin.message_user(
        request, format_html("{} Job{}: {}", text, "s" if len(jobs) != 1 else "", job_links(jobs)), messages.SUCCESS
    )


class JobActionsMixin:
    """One admin action per kind registered on this model's target type, for whoever may ask for it."""

    def get_actions(self, request):
        found = super().get_actions(request)
        if not request.user.has_perm(rules.REQUEST_JOB.permission):
            return found
        for kind in kinds.requestable(self.model.JOB_TARGET_TYPE):
            if kind.may_request(request.user):
                found[kind.action] = (_job_action(kind), kind.action, kind.label or kind.name)
        return found

    def job_action_names(self) -> list[str]:
        return [kind.action for kind in kinds.requestable(self.model.JOB_TARGET_TYPE)]

    def job_buttons(self, request) -> list[dict[str, Any]]:
        """The kinds this user may ask for on one object's page, as buttons (the same actions as the list's)."""
        if not request.user.has_perm(rules.REQUEST_JOB.permission):
            return []
        return [
            {"action": kind.action, "label": kind.label or kind.name, "asks": bool(kind.params)}
            for kind in kinds.requestable(self.model.JOB_TARGET_TYPE)
            if kind.may_request(request.user)
        ]


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
        return _back_to_page(request)

    action.__name__ = kind.action
    return action


def _back_to_page(request) -> HttpResponseRedirect | None:
    """Back to the page a button was pressed on (an object's page, `next`); None: the list, as Django does."""
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(back)
    return None


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
            "next": request.POST.get("next", ""),
        },
    )
