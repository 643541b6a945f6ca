"""/media/ serves published outputs to whoever may see the item, Range requests included, and nothing else."""

import pytest


def test_media_files_are_served_to_whoever_may_see_the_item_and_404_to_anyone_else(
    published, alice_api, bob_api, staff_api, anon_api
):
    poster = f"/media/thumbnails/{published.pk}/poster.jpg"
    playlist = f"/media/renditions/{published.pk}/hls-720p/index.m3u8"
    for client in (alice_api, staff_api):
        for url in (poster, playlist):
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert b"".join(answer.streaming_content) == b"published bytes"
    # Another user's item is indistinguishable from a missing one.
    assert bob_api.get(poster).status_code == 404
    assert bob_api.get(f"/media/thumbnails/{published.pk + 1000}/poster.jpg").status_code == 404
    assert anon_api.get(poster).status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        ".partial/job-1/renditions/{pk}.mp4",
        "%2epartial/job-1/renditions/{pk}.mp4",
        "thumbnails/{pk}/../../secret.txt",
        "thumbnails/{pk}/%2e%2e/%2e%2e/secret.txt",
        "thumbnails/{pk}/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "../secret.txt",
        "/etc/passwd",
        "thumbnails/{pk}/.hidden",
        "thumbnails/{pk}",
    ],
)
def test_media_paths_outside_published_outputs_answer_404(published, staff_api, path):
    # Staff see every item: only the path can keep these out.
    assert staff_api.get("/media/" + path.format(pk=published.pk)).status_code == 404


def test_media_answer_a_range_with_206_and_the_bytes_asked_for(published, alice_api, settings):
    path = settings.MEDIA_ROOT / f"renditions/{published.pk}/h264-480p.mp4"
    body = bytes(range(256)) * 40  # 10,240 bytes
    path.write_bytes(body)
    url = f"/media/renditions/{published.pk}/h264-480p.mp4"
    whole = alice_api.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    for header, first, last in (("bytes=0-99", 0, 99), ("bytes=10000-", 10000, 10239), ("bytes=-40", 10200, 10239)):
        part = alice_api.get(url, HTTP_RANGE=header)
        assert part.status_code == 206, header
        assert part["Content-Range"] == f"bytes {first}-{last}/{len(body)}"
        assert part["Accept-Ranges"] == "bytes"
        assert b"".join(part.streaming_content) == body[first : last + 1]
    # Past the end: 416 with the size.
    beyond = alice_api.get(url, HTTP_RANGE="bytes=20000-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(body)}"
    # A Range does not get around access.
    assert alice_api.get(url, HTTP_RANGE="bytes=0-1").status_code == 206


def test_a_range_request_for_someone_elses_media_is_404(published, bob_api):
    assert bob_api.get(f"/media/thumbnails/{published.pk}/poster.jpg", HTTP_RANGE="bytes=0-1").status_code == 404


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=", "pages=0-1", "bytes=5-2", "bytes=" + "9" * 30])
def test_a_malformed_range_is_refused_not_a_500(header):
    from offload.web.media import byte_range

    assert byte_range(header, 1000) is None
