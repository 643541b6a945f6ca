"""The Failures page names each example job's target (title or file name, library), not "media 6"."""

import re

import pytest

from offload.models import JobStatus, Library, MediaItem
from tests.support.jobrows import make_job

pytestmark = pytest.mark.django_db


def test_a_failure_groups_examples_name_their_targets(admin_client, alice, library_root):
    library = Library.objects.create(name="Films", path=str(library_root / "films"), owner=alice)
    feature = MediaItem.objects.create(library=library, relative_path="long.mkv", title="Long Feature")
    untitled = MediaItem.objects.create(library=library, relative_path="dir/clip_02.mp4")
    for item in (feature, untitled):
        make_job(
            "media.probe", JobStatus.FAILED, target_type="media", target_id=item.pk, error="ffprobe could not read it"
        )
    make_job("system.noop", JobStatus.FAILED, error="no target at all")
    html = admin_client.get("/admin/operations/failures/").content.decode()
    examples = " ".join(re.findall(r'<td class="offload-examples">(.*?)</td>', html, re.S))
    assert f'href="/admin/offload/mediaitem/{feature.pk}/change/"' in examples
    assert ">Long Feature</a>" in examples and ">clip_02.mp4</a>" in examples
    assert "in Films" in examples
    assert not re.search(r"\bmedia \d+\b", re.sub(r"<[^>]+>", " ", examples))
