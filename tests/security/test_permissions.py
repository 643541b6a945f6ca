"""One permission model: a view-only operator can look at everything and change nothing.

The endpoints and admin actions are read from the URL conf and the admin registry, so a new
one without a rule fails here.
"""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from drf_spectacular.generators import EndpointEnumerator
from rest_framework.permissions import SAFE_METHODS

from offload.admin.site import RefusesActionsItWillNotRun
from offload.alerts.models import Endpoint
from offload.api.permissions import rule_for
from offload.models import Job, JobMember, JobStatus, Library, MediaItem, QueueControl
from search.models import IndexBuild
from tests.support.cluster import BASE_DIR
from tests.support.people import api_client_for, make_user

pytestmark = pytest.mark.django_db


def api_writes() -> list[tuple[str, str, type, str | None]]:
    """(method, path, view class, viewset action) for every state-changing route under /api/v1/."""
    found = []
    for path, _, method, callback in EndpointEnumerator().get_api_endpoints():
        if method in SAFE_METHODS:
            continue
        action = (getattr(callback, "actions", None) or {}).get(method.lower())
        found.append((method, path, callback.cls, action))
    return found


API_WRITES = api_writes()
API_WRITE_IDS = [f"{method} {path}" for method, path, *_ in API_WRITES]


def declared_rule(view_class: type, method: str, action: str | None):
    view = view_class()
    view.action = action
    return rule_for(view, method)


@pytest.fixture
def viewer(db):
    """Staff with every view permission and nothing else: the admin shows them everything, read-only."""
    user = make_user("viewer")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def alices(alice, bob, library_root):
    """Alice's library (bob a member), an item, a queued job and a failed one, and a locked field."""
    folder = library_root / "alices"
    folder.mkdir()
    library = Library.objects.create(name="Alice's", path=str(folder), owner=alice)
    library.members.add(bob)
    item = MediaItem.objects.create(
        library=library, relative_path="film.mkv", title="Kept", locked_fields=["title"], provenance={"title": "user"}
    )
    queued = Job.objects.create(kind="media.probe", target_type="media", target_id=item.pk, requested_by=alice)
    failed = Job.objects.create(
        kind="media.enrich",
        target_type="media",
        target_id=item.pk,
        requested_by=alice,
        status=JobStatus.FAILED,
        error="boom",
        params_hash="failed",
    )
    endpoint = Endpoint.objects.create(owner=alice, name="Alice's", agent="webhook", url="https://example.com/h")
    return {"library": library, "media": item, "jobs": queued, "failed": failed, "endpoint": endpoint}


def state() -> dict:
    """What any of the walked requests could change."""
    return {
        "jobs": sorted(Job.objects.values_list("pk", "status", "cancel_requested_at", "attempts")),
        "items": sorted(MediaItem.objects.values_list("pk", "title", "locked_fields")),
        "libraries": sorted(Library.objects.values_list("pk", "name", "owner_id")),
        "members": sorted(Library.members.through.objects.values_list("library_id", "user_id")),
        "joins": sorted(JobMember.objects.values_list("job_id", "user_id")),
        "queues": sorted(QueueControl.objects.values_list("kind", "paused", "concurrency")),
        "builds": IndexBuild.objects.count(),
        "endpoints": sorted(Endpoint.objects.values_list("pk", "name", "url", "paused", "secret")),
    }


def fill(path: str, alices: dict) -> str:
    """The route with alice's row of its resource as {pk}, and a registered kind as {kind}."""
    rows = {"libraries": alices["library"], "media": alices["media"], "jobs": alices["jobs"]}
    rows["notifications"] = alices["endpoint"]
    if "{pk}" in path:
        path = path.replace("{pk}", str(rows[path.split("/")[3]].pk))
    return path.replace("{kind}", "media.probe").replace("{delivery_pk}", "1")


@pytest.mark.parametrize(("method", "path", "view_class", "action"), API_WRITES, ids=API_WRITE_IDS)
def test_every_api_write_names_its_permission_and_refuses_a_view_only_operator(
    viewer, alices, method, path, view_class, action
):
    rule = declared_rule(view_class, method, action)
    assert rule is not None, f"{method} {path} names no permission rule"
    before = state()
    response = api_client_for(viewer).generic(method, fill(path, alices), "{}", content_type="application/json")
    if rule.others_only and "{pk}" not in path:
        # Making something of one's own (a notification endpoint): nothing of alice's changes.
        assert response.status_code != 500
    else:
        # 404: a resource access shows its owner alone (another's endpoint), so it is refused unseen.
        assert response.status_code in (403, 404), (method, path, response.status_code, response.content[:200])
        assert response.status_code == 403 or path.startswith("/api/v1/notifications/")
    assert state() == before


@pytest.mark.parametrize(("method", "path", "view_class", "action"), API_WRITES, ids=API_WRITE_IDS)
def test_docs_api_lists_the_permission_of_every_api_write(method, path, view_class, action):
    rule = declared_rule(view_class, method, action)
    section = (BASE_DIR / "docs" / "api.md").read_text().split("## Permissions", 1)[1].split("\n## ", 1)[0]
    endpoint = f"`{method} {path.removeprefix('/api/v1').replace('{pk}', '{id}')}`"
    rows = [line for line in section.splitlines() if endpoint in line]
    assert rows, f"docs/api.md's permission table has no row for {endpoint}"
    assert f"`{rule.permission}`" in rows[0]


def admin_actions() -> list[tuple[str, str]]:
    """(model label, action name) for every bulk action of every registered model page."""
    return sorted(
        (model._meta.label_lower, name)
        for model, page in admin.site._registry.items()
        for name in page.declared_actions()
    )


ADMIN_ACTIONS = admin_actions()


def test_every_registered_model_page_refuses_actions_it_will_not_run():
    assert all(isinstance(page, RefusesActionsItWillNotRun) for page in admin.site._registry.values())
    # The project's own actions are among those walked below.
    assert {"cancel_jobs", "retry_jobs", "unlock_all_fields", "transcode", "scan"} <= {n for _, n in ADMIN_ACTIONS}


@pytest.mark.parametrize(("label", "action"), ADMIN_ACTIONS, ids=[f"{m}:{a}" for m, a in ADMIN_ACTIONS])
def test_every_admin_action_refuses_a_view_only_operator(viewer, alices, label, action):
    app_label, model_name = label.split(".")
    model = next(m for m in admin.site._registry if m._meta.label_lower == label)
    row = model.objects.order_by("pk").first()
    client = Client()
    client.force_login(viewer)
    before = state()
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    body = {"action": action, "_selected_action": [row.pk if row else 1], "index": 0, "post": "yes", "confirm": "1"}
    response = client.post(url, {**body, "profile": "h264-480p"})
    assert response.status_code == 403, (label, action, response.status_code)
    assert state() == before


def own_admin_urls() -> list[tuple[str, str, list[str]]]:
    """(URL name, model label or "", its arguments) for every admin view the project adds to Django's."""
    site = admin.site
    django_site = {getattr(p, "name", None) for p in admin.AdminSite.get_urls(site)}
    found = [
        (pattern.name, "", list(pattern.pattern.converters))
        for pattern in site.get_urls()
        if getattr(pattern, "name", None) and pattern.name not in django_site
    ]
    for model, page in site._registry.items():
        django_own = {p.name for p in admin.ModelAdmin.get_urls(page)}
        for pattern in page.get_urls():
            if getattr(pattern, "name", None) and pattern.name not in django_own:
                found.append((pattern.name, model._meta.model_name, list(pattern.pattern.converters)))
    return sorted(found)


OWN_ADMIN_URLS = own_admin_urls()


@pytest.mark.parametrize(("name", "model", "arguments"), OWN_ADMIN_URLS, ids=[n for n, *_ in OWN_ADMIN_URLS])
def test_every_admin_page_of_the_project_refuses_a_view_only_operators_post(viewer, alices, name, model, arguments):
    objects = {"library": alices["library"], "mediaitem": alices["media"], "job": alices["failed"], "user": viewer}
    kwargs = {"object_id": objects[model].pk if model in objects else 1, "id": viewer.pk, "field": "title"}
    client = Client()
    client.force_login(viewer)
    before = state()
    body = {
        "post": "yes",
        "confirmed": "yes",
        "change": "pause",
        "kind": "media.probe",
        "concurrency": "1",
        "who": f"user:{viewer.pk}",
        "fingerprint": "x",
    }
    url = reverse(f"admin:{name}", kwargs={key: kwargs[key] for key in arguments})
    response = client.post(url, body)
    # 405: a page that only shows; anything that changes state answers 403 without its permission.
    assert response.status_code in (403, 405), (name, response.status_code)
    assert state() == before
