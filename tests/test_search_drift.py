"""Drift between index and database: reported by command, admin page and schedule, and repaired."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.core.management import call_command
from django.test import Client
from django_q.models import Schedule

from offload.models import Job, Library, MediaItem
from search import sync, tasks
from search import typesense as ts
from search.models import PendingSync

pytestmark = pytest.mark.django_db


@pytest.fixture
def drifted(index, alice, tmp_path):
    """Four indexed items, then one document lost, one stale, and one orphan added behind the app's back."""
    library = Library.objects.create(name="Films", path=str(tmp_path / "films"), owner=alice)
    items = [MediaItem.objects.create(library=library, relative_path=f"{n}.mkv", title=f"Film {n}") for n in range(4)]
    sync.sync_pending()
    client = ts.write_client()
    ts.delete_documents(client, index, [items[0].pk])
    MediaItem.objects.filter(pk=items[1].pk).update(
        title="Renamed quietly", updated_at=items[1].updated_at + timedelta(seconds=5)
    )
    orphan = max(i.pk for i in items) + 1000
    ts.import_documents(client, index, [{**_document_like(items[2]), "id": str(orphan)}])
    return {"missing": items[0].pk, "stale": items[1].pk, "orphaned": orphan, "items": items}


def _document_like(item: MediaItem) -> dict:
    from search.documents import load_documents

    return load_documents([item.pk])[item.pk]


def test_the_command_reports_missing_orphaned_and_stale(drifted, capsys):
    call_command("search_drift")
    out = capsys.readouterr().out
    assert f"missing: 1 ({drifted['missing']})" in out
    assert f"orphaned: 1 ({drifted['orphaned']})" in out
    assert f"stale: 1 ({drifted['stale']})" in out


def test_the_command_repairs_on_request(drifted, capsys):
    call_command("search_drift", "--repair")
    assert "repaired 3; drift left: 0" in capsys.readouterr().out
    client = ts.write_client()
    docs = {int(d["id"]): d["title"] for d in ts.export_documents(client, ts.alias_name(), ("id", "title"))}
    assert docs == dict(MediaItem.objects.values_list("pk", "title"))
    assert docs[drifted["stale"]] == "Renamed quietly"


def test_writes_in_flight_are_not_drift(drifted, capsys):
    sync.mark_items([drifted["missing"]])
    call_command("search_drift")
    out = capsys.readouterr().out
    assert "missing: 0" in out and "1 writes in flight" in out


def test_the_scheduled_reconcile_repairs_drift(drifted):
    result = tasks.reconcile()
    assert (result["missing"]["count"], result["orphaned"]["count"], result["stale"]["count"]) == (1, 1, 1)
    assert result["repaired"] == 3
    assert tasks.reconcile()["repaired"] == 0


def test_the_admin_drift_page_reports_and_queues_a_repair(drifted, staff, django_capture_on_commit_callbacks):
    browser = Client()
    browser.force_login(staff)
    page = browser.get("/admin/search/indexbuild/drift/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="drift-missing">1<' in html and 'id="drift-orphaned">1<' in html and 'id="drift-stale">1<' in html
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/admin/search/indexbuild/drift/")
    assert response.status_code == 302
    # The request only queued the repair; the search lane writes it.
    assert set(PendingSync.objects.values_list("item_id", flat=True)) == {
        drifted["missing"],
        drifted["stale"],
        drifted["orphaned"],
    }


def test_the_admin_reindex_button_queues_a_reindex_job(index, staff):
    browser = Client()
    browser.force_login(staff)
    assert browser.get("/admin/search/indexbuild/").status_code == 200
    # Asked first: a confirmation page, then the confirmed POST queues the job.
    assert browser.post("/admin/search/indexbuild/reindex/").status_code == 200
    assert not Job.objects.filter(kind="search.reindex").exists()
    response = browser.post("/admin/search/indexbuild/reindex/", {"post": "yes"})
    assert response.status_code == 302
    job = Job.objects.get(kind="search.reindex")
    assert response["Location"] == f"/admin/offload/job/{job.pk}/change/"
    assert job.requested_by == staff
    entry = LogEntry.objects.get(user=staff, object_id=str(job.pk))
    assert (entry.action_flag, entry.change_message) == (ADDITION, "Queued.")


def test_other_users_cannot_open_the_search_admin(index, alice):
    browser = Client()
    browser.force_login(alice)
    assert browser.get("/admin/search/indexbuild/drift/").status_code == 302  # to the admin login
    assert browser.post("/admin/search/indexbuild/reindex/").status_code == 302
    assert not Job.objects.exists()


def test_the_schedules_run_on_the_search_lane_without_catch_up(settings):
    call_command("schedules")
    schedules = Schedule.objects.filter(name__startswith="search: ")
    assert {s.func for s in schedules} == {"search.tasks.drain_pending", "search.tasks.reconcile"}
    assert {s.cluster for s in schedules} == {settings.SEARCH_Q_CLUSTER}
    assert settings.Q_CLUSTER["catch_up"] is False
