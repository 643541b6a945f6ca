"""Mass and destructive admin actions ask first, with a count and a preview, as Django's delete does."""

from django.urls import reverse

from offload.models import Job, Library, MediaItem


def test_reindex_asks_first_with_the_item_count(admin_client, alice, tmp_path):
    library = Library.objects.create(name="L", path=str(tmp_path), owner=alice)
    for name in ("a.mp4", "b.mp4"):
        MediaItem.objects.create(library=library, relative_path=name)
    url = reverse("admin:search_reindex")
    asked = admin_client.post(url)
    assert asked.status_code == 200
    html = asked.content.decode()
    assert "Rebuild the search index?" in html and "2 media items" in html
    assert not Job.objects.filter(kind="search.reindex").exists()
    done = admin_client.post(url, {"post": "yes"})
    assert done.status_code == 302
    assert Job.objects.filter(kind="search.reindex").count() == 1


def test_the_job_list_confirmation_counts_every_selected_job(admin_client, alice, staff):
    from offload import jobs

    queued = [jobs.enqueue("system.sleep", params={"seconds": n}, user=alice)[0] for n in range(25)]
    asked = admin_client.post(
        reverse("admin:offload_job_changelist"),
        {"action": "cancel_jobs", "_selected_action": [j.pk for j in queued]},
    )
    html = asked.content.decode()
    assert "Cancel 25 jobs?" in html
    # A preview of the first twenty by name, and how many more.
    assert html.count('class="offload-status offload-status-queued"') == 20
    assert "… and 5 more." in html
    assert Job.objects.filter(status="queued").count() == 25
