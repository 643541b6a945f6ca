"""What the security tests share: an item whose names are markup, and its published outputs."""

import pytest

from offload.models import Library, MediaItem
from tests.support.hostile import SCRIPT


@pytest.fixture
def hostile_item(alice, library_root):
    library = Library.objects.create(name=f"Lib {SCRIPT}", path=str(library_root), owner=alice)
    return MediaItem.objects.create(library=library, relative_path=f"{SCRIPT}.mp4", title=SCRIPT, overview=SCRIPT)


@pytest.fixture
def published(hostile_item, settings):
    """A poster and a rendition as the workers publish them, and a partial output beside them."""
    root = settings.MEDIA_ROOT
    for relative in (
        f"thumbnails/{hostile_item.pk}/poster.jpg",
        f"renditions/{hostile_item.pk}/hls-720p/index.m3u8",
        f".partial/job-1/renditions/{hostile_item.pk}.mp4",
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"published bytes")
    (root.parent / "secret.txt").write_text("outside MEDIA_ROOT")
    return hostile_item
