"""The job actions' confirmation page: how many jobs, which ones by name, then one button."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from offload.admin import readable
from offload.models import Job

# Jobs a confirmation page lists by name; the count says how many more there are.
PREVIEW_ROWS = 20


def confirmation(
    modeladmin,
    request: HttpRequest,
    *,
    title: str,
    question: str,
    jobs: list[Job],
    count: int,
    button: str,
    back: str,
    hidden: list[tuple[str, Any]] | None = None,
    form_action: str | None = None,
) -> HttpResponse:
    """An intermediate page, as Django's delete confirmation: how many, which ones, then one button."""
    return TemplateResponse(
        request,
        "admin/offload/confirm.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "question": question,
            "jobs": readable.name_targets(jobs),
            "count": count,
            "more": max(0, count - len(jobs)),
            "button": button,
            "back": back,
            # The breadcrumb back: a job's page, or the list the bulk action came from.
            "back_label": f"{jobs[0].kind} #{jobs[0].pk}" if count == 1 and back.endswith("/change/") else "Jobs",
            "hidden": hidden or [],
            "form_action": form_action if form_action is not None else request.path,
            "opts": Job._meta,
        },
    )
