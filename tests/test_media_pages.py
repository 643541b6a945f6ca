"""The media and library pages as a person reads them: tags, units, names, posters, players, scans."""

import pytest
from django.urls import reverse

from offload.models import Job, Library, MediaItem, Rendition
from tests.support.jobrunner import drain
from tests.support.media import make_video


@pytest.fixture
def library(alice, library_root):
    return Library.objects.create(name="Films", path=str(library_root), owner=alice)


def item_page(client, item) -> str:
    response = client.get(reverse("admin:offload_mediaitem_change", args=[item.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_genres_people_and_tags_are_edited_as_tags(admin_client, library):
    item = MediaItem.objects.create(library=library, relative_path="a.mp4", genres=["Drama", "Comedy"])
    html = item_page(admin_client, item)
    assert 'value="Drama, Comedy"' in html and "data-offload-tags" in html and "offload/tags.js" in html
    assert "[&quot;Drama&quot;" not in html
    form = {
        "kind": "movie", "title": "", "original_title": "", "year": "", "overview": "", "series_title": "",
        "season": "", "episode": "", "locked_fields": "[]", "initial-locked_fields": "[]",
        "genres": "Drama, Sci-Fi ,  , Drama", "people": "Ada Lovelace", "tags": "",
        "initial-genres": "Drama, Comedy", "initial-people": "", "initial-tags": "",
    }  # fmt: skip
    response = admin_client.post(reverse("admin:offload_mediaitem_change", args=[item.pk]), form)
    assert response.status_code == 302, response.content[:3000]
    item.refresh_from_db()
    assert item.genres == ["Drama", "Sci-Fi"]
    assert item.people == ["Ada Lovelace"]
    assert set(item.locked_fields) == {"genres", "people"}


def test_technical_facts_have_units_and_names_people_use(admin_client, library):
    item = MediaItem.objects.create(
        library=library, relative_path="a.mp4", container="mov,mp4,m4a,3gp,3g2,mj2", size=4_200_000,
        bitrate=1_500_000, duration=125.0, video_codec="h264", audio_codec="aac", width=640, height=360,
    )  # fmt: skip
    html = item_page(admin_client, item)
    for text in ("MP4 / QuickTime", "4.2 MB", "1.5 Mb/s", "H.264 / AVC", "2 min 5 s"):
        assert text in html, text
    listing = admin_client.get(reverse("admin:offload_mediaitem_changelist")).content.decode()
    assert "4.2 MB" in listing and "2 min 5 s" in listing


def test_the_list_shows_posters_and_offers_no_add(admin_client, library):
    MediaItem.objects.create(library=library, relative_path="a.mp4", poster="thumbnails/1/poster.jpg")
    listing = admin_client.get(reverse("admin:offload_mediaitem_changelist")).content.decode()
    assert '<img class="offload-poster-thumb" src="/media/thumbnails/1/poster.jpg"' in listing
    assert reverse("admin:offload_mediaitem_add") not in listing
    assert admin_client.get(reverse("admin:offload_mediaitem_add")).status_code == 403


def test_the_item_page_plays_each_rendition(admin_client, library):
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    common = {"item": item, "size": 1000, "duration": 3.0}
    Rendition.objects.create(profile="h264-480p", path=f"renditions/{item.pk}/h264-480p.mp4", video_codec="h264",
                             audio_codec="aac", height=360, width=640, **common)  # fmt: skip
    Rendition.objects.create(profile="hls-720p", path=f"renditions/{item.pk}/hls-720p/index.m3u8",
                             video_codec="h264", audio_codec="aac", height=360, width=640, **common)  # fmt: skip
    Rendition.objects.create(profile="audio-aac-128k", path=f"renditions/{item.pk}/audio-aac-128k.m4a",
                             audio_codec="aac", **common)  # fmt: skip
    html = item_page(admin_client, item)
    assert f'<video controls preload="none" poster="" src="/media/renditions/{item.pk}/h264-480p.mp4">' in html
    assert (
        f'<source src="/media/renditions/{item.pk}/hls-720p/index.m3u8" type="application/vnd.apple.mpegurl">' in html
    )
    assert f'<audio controls preload="none" src="/media/renditions/{item.pk}/audio-aac-128k.m4a">' in html


def test_the_library_page_scans_and_shows_its_history_and_items(admin_client, library, library_root):
    make_video(library_root / "clip.mp4", seconds=1, size="160x120")
    page = reverse("admin:offload_library_change", args=[library.pk])
    html = admin_client.get(page).content.decode()
    assert reverse("admin:offload_library_scan", args=[library.pk]) in html
    assert "Never scanned." in html
    admin_client.post(reverse("admin:offload_library_scan", args=[library.pk]))
    scan = Job.objects.get(kind="library.scan")
    drain()
    html = admin_client.get(page).content.decode()
    assert f"#{scan.pk}</a>" in html and "offload-status-succeeded" in html
    assert "1 created" in html
    items = reverse("admin:offload_mediaitem_changelist") + f"?library__id__exact={library.pk}"
    assert f'<a href="{items}">1 item</a>' in html
