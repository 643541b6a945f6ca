"""The admin's small defects stay fixed: a failure's message printed once on its job page, rendition
captions not indented like form help, one mark for an empty value."""

import re

import pytest
from django.contrib import admin
from django.urls import reverse

from offload import jobs
from offload.admin import media as media_admin
from offload.models import Library, MediaItem, Rendition

pytestmark = pytest.mark.django_db


def test_a_failures_message_is_printed_once_on_its_job_page(admin_client, alice):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    jobs.fail(jobs.claim(job.pk), "The input is unusable: nothing to do.")
    html = admin_client.get(reverse("admin:offload_job_change", args=[job.pk])).content.decode()
    assert html.count("The input is unusable: nothing to do.") == 1
    assert '<pre class="offload-pre" id="job-error">The input is unusable: nothing to do.</pre>' in html
    # The attempt and the timeline point at it.
    assert html.count('<a href="#job-error">the Error below</a>') == 2


def test_an_earlier_attempts_own_error_stays_in_its_row(admin_client, alice):
    job, _ = jobs.enqueue("system.sleep", params={"seconds": 1}, user=alice)
    assert jobs.fail_or_retry(jobs.claim(job.pk), "upstream answered 503", retry_after=0)
    jobs.fail(jobs.claim(job.pk), "The input is unusable: nothing to do.")
    html = admin_client.get(reverse("admin:offload_job_change", args=[job.pk])).content.decode()
    attempts = re.search(r'<table class="offload-attempts">(.*?)</table>', html, re.S).group(1)
    assert "upstream answered 503" in attempts


def test_rendition_captions_do_not_take_the_form_helps_indent(alice, library_root):
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    for path in ("r/a.mp4", "r/index.m3u8"):
        html = media_admin.player(
            Rendition(item=item, profile="p", path=path, size=1000, duration=1.0, video_codec="h264", height=90)
        )
        assert 'class="help"' not in html and "class='help'" not in html
        assert 'class="offload-caption"' in html


def test_every_admin_page_writes_an_empty_value_as_one_em_dash(admin_client, alice, library_root):
    assert admin.site.empty_value_display == "—"
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    MediaItem.objects.create(library=library, relative_path="a.mp4")
    listing = admin_client.get(reverse("admin:offload_mediaitem_changelist")).content.decode()
    assert '<td class="field-' in listing
    assert not re.search(r'<td class="field-[\w_]+">-</td>', listing)
