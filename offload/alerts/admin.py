"""The admin's notification pages: endpoints (add, edit, pause, send a test) and their deliveries."""

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from offload.alerts import endpoints
from offload.alerts.models import SUBSCRIBABLE, Delivery, DeliveryAttempt, Endpoint, Outcome
from offload.models import Job

OUTCOME_COLOURS = {
    Outcome.SENT: "succeeded",
    Outcome.FAILED: "failed",
    Outcome.DEAD: "failed",
    Outcome.PENDING: "queued",
    Outcome.LIMITED: "cancelled",
    Outcome.DEDUPED: "cancelled",
}


def outcome_badge(row: Delivery) -> str:
    """The outcome as the job badges show a status (offload/admin.css)."""
    return format_html(
        '<span class="offload-status offload-status-{}">{}</span>', OUTCOME_COLOURS.get(row.outcome, ""), row.outcome
    )


SMALL_JSON = forms.Textarea(attrs={"rows": 2, "cols": 60})
# What the form sets on an endpoint; `token` becomes its secret.
ENDPOINT_FIELDS = ["name", "agent", "url", "to", "events", "kinds", "libraries", "options", "paused"]


class EndpointForm(forms.ModelForm):
    url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=2048,
        widget=forms.URLInput(attrs={"class": "vURLField", "size": 80}),
        help_text="The webhook, ntfy topic, Gotify server or Discord webhook URL; empty for email.",
    )
    events = forms.MultipleChoiceField(choices=[(e, e) for e in SUBSCRIBABLE], widget=forms.CheckboxSelectMultiple)
    kinds = forms.JSONField(
        required=False, initial=list, widget=SMALL_JSON, help_text='Job kinds, e.g. ["media.transcode"]; empty: all.'
    )
    libraries = forms.JSONField(
        required=False, initial=list, widget=SMALL_JSON, help_text="Library ids, e.g. [1, 2]; empty: all."
    )
    options = forms.JSONField(
        required=False,
        initial=dict,
        widget=SMALL_JSON,
        help_text='ntfy/Gotify: {"priority": 4, "tags": ["tv"]}. Email, its own SMTP server: {"smtp_host": '
        '"smtp.example.com", "smtp_port": 587, "smtp_username": "me", "smtp_tls": "starttls"}.',
    )
    token = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Gotify's application token, an ntfy access token or an email endpoint's SMTP password. "
        "Stored, never shown again; "
        "leave empty to keep the current one.",
    )

    class Meta:
        model = Endpoint
        fields = ENDPOINT_FIELDS

    def clean(self):
        data = super().clean()
        fields = {name: data.get(name) for name in ENDPOINT_FIELDS if name in data}
        fields["kinds"], fields["libraries"] = fields.get("kinds") or [], fields.get("libraries") or []
        fields["options"] = fields.get("options") or {}
        if data.get("token"):
            fields["secret"] = data["token"]
        try:
            self.endpoint_fields = endpoints.clean(self.user, fields, self.instance if self.instance.pk else None)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["created_at", "delivery_link", "event", "outcome_display", "attempt", "status_code", "latency_ms"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-created_at", "-id"]
    show_change_link = False
    verbose_name_plural = "Deliveries (newest first)"

    def get_queryset(self, request):
        rows = super().get_queryset(request).select_related("endpoint")
        # Someone else's endpoints and what they were sent stay theirs, as in the lists.
        return rows if request.user.is_superuser else rows.filter(endpoint__owner=request.user)

    @admin.display(description="Delivery")
    def delivery_link(self, obj: Delivery) -> str:
        url = reverse("admin:alerts_delivery_change", args=[obj.pk])
        return format_html('<a href="{}">{} → {}</a>', url, obj.webhook_id[:12], obj.endpoint.name)

    @admin.display(description="Outcome")
    def outcome_display(self, obj: Delivery) -> str:
        return outcome_badge(obj)


class ObjectButtonAdmin(admin.ModelAdmin):
    """A page whose one button (a POST named object_button[0]) calls a domain function on its object."""

    object_button: tuple[str, Callable[[Any], Any] | None, str] = ("", None, "")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        name, act, said = self.object_button
        if request.method == "POST" and name and name in request.POST:
            obj = self.get_queryset(request).filter(pk=object_id).first()
            if obj is not None:
                act(obj)
                self.message_user(request, said)
            return HttpResponseRedirect(request.path)
        return super().change_view(request, object_id, form_url, extra_context)


class EndpointAdmin(ObjectButtonAdmin):
    form = EndpointForm
    list_display = ["name", "owner", "agent", "address", "events_display", "state_display", "deliveries_link"]
    list_filter = ["agent", "paused"]
    list_select_related = ["owner"]
    search_fields = ["name", "url", "to"]
    actions = ["pause", "resume", "send_test"]
    inlines = [DeliveryInline]
    readonly_fields = ["secret_display", "paused_reason", "failing_since"]

    def get_fieldsets(self, request, obj=None):
        main = ["name", "agent", "url", "to", "token"]
        if obj is not None:
            main.append("secret_display")
        return [
            (None, {"fields": main}),
            ("Events", {"fields": ["events", "kinds", "libraries", "options"]}),
            ("State", {"fields": ["paused", "paused_reason", "failing_since"]}),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.user = request.user
        return form

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Endpoints are personal: an operator sees everyone's only as a superuser.
        rows = super().get_queryset(request)
        return rows if request.user.is_superuser else rows.filter(owner=request.user)

    def save_model(self, request, obj: Endpoint, form, change) -> None:
        fields = form.endpoint_fields
        if change:
            endpoints.update_endpoint(request.user, obj, fields)
            return
        created, secret = endpoints.create_endpoint(request.user, fields)
        obj.pk = created.pk
        if secret:
            messages.warning(
                request, f"The signing secret of {created.name!r} is {secret} — copy it now: it is never shown again."
            )

    change_form_template = "admin/alerts/endpoint/change_form.html"
    object_button = ("_send_test", endpoints.send_test, "Queued a test delivery: it is listed below once sent.")

    @admin.display(description="Signing secret or token")
    def secret_display(self, obj: Endpoint) -> str:
        return endpoints.masked(obj.secret) or "—"

    @admin.display(description="Events")
    def events_display(self, obj: Endpoint) -> str:
        return ", ".join(obj.events)

    @admin.display(description="State", ordering="paused")
    def state_display(self, obj: Endpoint) -> str:
        if obj.paused:
            return format_html(
                '<span class="offload-status offload-status-cancelled" title="{}">paused</span>', obj.paused_reason
            )
        if obj.failing_since:
            since = timezone.localtime(obj.failing_since).strftime("%Y-%m-%d %H:%M %Z")
            return format_html('<span class="offload-status offload-status-failed">failing since {}</span>', since)
        return format_html('<span class="offload-status offload-status-succeeded">{}</span>', "active")

    @admin.display(description="Deliveries")
    def deliveries_link(self, obj: Endpoint) -> str:
        url = reverse("admin:alerts_delivery_changelist") + f"?endpoint__id__exact={obj.pk}"
        return format_html('<a href="{}">deliveries</a>', url)

    @admin.action(description="Pause the selected endpoints", permissions=["change"])
    def pause(self, request, queryset) -> None:
        n = queryset.update(paused=True, paused_reason="Paused by hand.")
        self.message_user(request, f"Paused {n} endpoint(s).")

    @admin.action(description="Resume the selected endpoints", permissions=["change"])
    def resume(self, request, queryset) -> None:
        n = queryset.update(paused=False, paused_reason="", failing_since=None)
        self.message_user(request, f"Resumed {n} endpoint(s).")

    @admin.action(description="Send a test to the selected endpoints", permissions=["change"])
    def send_test(self, request, queryset) -> None:
        for endpoint in queryset:
            endpoints.send_test(endpoint)
        self.message_user(request, f"Queued a test delivery to {queryset.count()} endpoint(s).")


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["number", "at", "status_code", "latency_ms", "answer", "error"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False

    @admin.display(description="Answer (first 1 KB, as text)")
    def answer(self, obj: DeliveryAttempt) -> str:
        # Escaped by format_html: an endpoint's answer is never rendered as HTML.
        return format_html('<pre style="white-space: pre-wrap; max-width: 40em">{}</pre>', obj.response or "—")


class DeliveryAdmin(ObjectButtonAdmin):
    list_display = [
        "created_at", "endpoint", "event", "outcome_display", "attempt", "status_code", "latency_ms",
        "next_attempt_at", "job_link",
    ]  # fmt: skip
    list_filter = ["outcome", "event", "endpoint__agent"]
    list_select_related = ["endpoint"]
    search_fields = ["=webhook_id", "=job__id"]
    actions = ["redeliver"]
    inlines = [AttemptInline]
    fields = [
        "endpoint", "event", "webhook_id", "outcome_display", "attempt", "status_code", "latency_ms", "error",
        "next_attempt_at", "created_at", "job_link", "body",
    ]  # fmt: skip
    readonly_fields = fields
    change_form_template = "admin/alerts/delivery/change_form.html"
    object_button = ("_redeliver", endpoints.redeliver, "Queued for delivery again, with the same webhook-id.")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        rows = super().get_queryset(request)
        return rows if request.user.is_superuser else rows.filter(endpoint__owner=request.user)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_display(self, obj: Delivery) -> str:
        return outcome_badge(obj)

    @admin.display(description="Job")
    def job_link(self, obj: Delivery) -> str:
        if obj.job_id is None:
            return "—"
        return format_html(
            '<a href="{}">job {}</a>', reverse("admin:offload_job_change", args=[obj.job_id]), obj.job_id
        )

    @admin.display(description="Body")
    def body(self, obj: Delivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))

    @admin.action(description="Redeliver the selected deliveries", permissions=["change"])
    def redeliver(self, request, queryset) -> None:
        for row in queryset:
            endpoints.redeliver(row)
        self.message_user(request, f"Queued {queryset.count()} delivery(ies) again.")


class JobDeliveryInline(DeliveryInline):
    """The job's page lists the notifications its outcome caused."""

    verbose_name_plural = "Notifications"


def register() -> None:
    """Put these pages on the admin site, and the deliveries on each job's page (from AlertsConfig.ready())."""
    admin.site.register(Endpoint, EndpointAdmin)
    admin.site.register(Delivery, DeliveryAdmin)
    job_admin = admin.site._registry.get(Job)
    if job_admin is not None and JobDeliveryInline not in job_admin.inlines:
        job_admin.inlines = [*job_admin.inlines, JobDeliveryInline]
