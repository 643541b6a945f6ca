"""Odd values answer as documented: a bad cursor 404 "Invalid cursor", an oversized cap 400, never a 500."""

import base64

import hypothesis
import pytest
from django.urls import reverse
from hypothesis import HealthCheck
from hypothesis import strategies as st

from offload.models import Job, QueueControl

pytestmark = pytest.mark.django_db

ODD_SETTINGS = hypothesis.settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture
def a_job(alice):
    return Job.objects.create(kind="media.probe", requested_by=alice)


def cursor(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")


@pytest.mark.parametrize("position", ["notadate", "%00", "1e400", "9999-12-31T23:59:59-12:00", "2026-13-01"])
def test_a_forged_position_answers_404_invalid_cursor(alice_api, a_job, position):
    response = alice_api.get("/api/v1/jobs/", {"cursor": cursor(f"p={position}")})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


# What a forger puts in a cursor: DRF's own fields (o, r, p) with any text, or any bytes at all.
FORGED = st.one_of(
    st.builds(
        lambda o, r, p: "&".join(f"{k}={v}" for k, v in (("o", o), ("r", r), ("p", p)) if v is not None),
        st.none() | st.text(max_size=12),
        st.none() | st.text(max_size=4),
        st.none() | st.text(max_size=40),
    ).map(cursor),
    st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode("ascii")),
    st.text(max_size=60),
)


@hypothesis.given(forged=FORGED)
@ODD_SETTINGS
def test_any_cursor_answers_a_page_or_404_invalid_cursor(alice_api, a_job, forged):
    try:
        response = alice_api.get("/api/v1/jobs/", {"cursor": forged})
    except UnicodeEncodeError:
        return  # not a URL a client can send
    assert response.status_code in (200, 404), (forged, response.status_code)
    if response.status_code == 404:
        assert response.json() == {"detail": "Invalid cursor"}


def test_the_cursors_the_api_gives_still_page_through(alice_api, alice):
    Job.objects.bulk_create(Job(kind="media.probe", requested_by=alice, params_hash=str(n)) for n in range(5))
    first = alice_api.get("/api/v1/jobs/", {"page_size": 2}).json()
    second = alice_api.get(first["next"]).json()
    assert len(second["results"]) == 2
    assert not {j["id"] for j in first["results"]} & {j["id"] for j in second["results"]}


@pytest.mark.parametrize("value", [9223372036854775808, 2**31, 10**30])
def test_a_cap_beyond_the_column_answers_400(staff_api, value):
    response = staff_api.patch("/api/v1/queues/media.probe/", {"concurrency": value}, format="json")
    assert response.status_code == 400
    assert "concurrency" in response.json()
    assert not QueueControl.objects.filter(concurrency__isnull=False).exists()


def test_the_largest_cap_the_column_holds_is_taken(staff_api):
    response = staff_api.patch("/api/v1/queues/media.probe/", {"concurrency": 2**31 - 1}, format="json")
    assert response.status_code == 200 and response.json()["concurrency"] == 2**31 - 1


@pytest.mark.parametrize(
    "query", ["page_size=null&page_size=null", "page_size=0", "page_size=2&page_size=3", "page_size=x"]
)
def test_a_page_size_the_schema_forbids_answers_400(alice_api, query):
    assert alice_api.get(f"/api/v1/jobs/?{query}").status_code == 400


@pytest.mark.parametrize("name", ["sort", "kind", "page", "per_page", "year_from", "library"])
def test_a_blank_search_parameter_the_schema_forbids_answers_400(alice_api, name):
    response = alice_api.get(f"/api/v1/search/?{name}=")
    assert response.status_code == 400 and name in response.json()


def test_the_schema_says_a_library_filter_and_a_page_are_whole_numbers_from_1(anon_api):
    schema = anon_api.get("/api/v1/schema/?format=json").json()
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/media/"]["get"]["parameters"]}
    assert parameters["library"]["type"] == "integer" and parameters["library"]["minimum"] == 1
    assert parameters["page"]["minimum"] == 1
    jobs = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/jobs/"]["get"]["parameters"]}
    assert jobs["page_size"]["minimum"] == 1


def test_the_admin_refuses_a_cap_beyond_the_column_with_a_message(admin_client):
    change = reverse("admin:offload_queues_change")
    answer = admin_client.post(
        change, {"change": "cap", "kind": "media.probe", "concurrency": str(2**63), "confirmed": "yes"}, follow=True
    )
    assert any("at least 1 and at most 2147483647" in str(m) for m in answer.context["messages"])
    assert not QueueControl.objects.exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "path", ["/api/v1/media/abc/probe/", "/api/v1/libraries/x1/scan/", "/api/v1/media/%C2%B2/probe/"]
)
def test_a_job_request_on_an_id_that_is_no_number_answers_404_at_once(alice_api, path):
    # It used to walk every number of the BIGINT range looking for None, holding a worker for good.
    assert alice_api.post(path).status_code == 404


@pytest.mark.parametrize("tag", ["", "   ", "\t\n"])
def test_a_blank_tag_is_refused_and_the_schema_says_so(alice_api, alice, library_root, tag):
    """A tag blank once trimmed answers 400, and the schema's pattern refuses it too (the fuzzer's finding)."""
    import re

    from offload.models import Library, MediaItem

    library = Library.objects.create(name="A", path=str(library_root), owner=alice)
    item = MediaItem.objects.create(library=library, relative_path="a.mp4")
    schema = alice_api.get("/api/v1/schema/?format=json").json()
    body = schema["components"]["schemas"]["PatchedDescriptiveRequest"]["properties"]["tags"]["items"]
    assert re.search(body["pattern"], tag) is None
    assert re.search(body["pattern"], " a tag ")
    assert alice_api.patch(f"/api/v1/media/{item.pk}/", {"tags": [tag]}, format="json").status_code == 400
    assert alice_api.patch(f"/api/v1/media/{item.pk}/", {"tags": [" a tag "]}, format="json").status_code == 200


def test_an_empty_page_of_an_endpoints_deliveries_answers_404_as_the_schema_says(alice_api, alice, settings):
    from offload.alerts import endpoints

    settings.OFFLOAD_NOTIFY_ALLOW_PRIVATE = True
    hook, _ = endpoints.create_endpoint(
        alice, {"agent": "webhook", "name": "script", "url": "http://127.0.0.1:9/hook", "events": ["job.failed"]}
    )
    path = f"/api/v1/notifications/endpoints/{hook.pk}/deliveries/"
    assert alice_api.get(path).status_code == 200
    assert alice_api.get(path + "?page=").status_code == 404
    schema = alice_api.get("/api/v1/schema/?format=json").json()
    parameters = {
        p["name"]: p["schema"]
        for p in schema["paths"]["/api/v1/notifications/endpoints/{id}/deliveries/"]["get"]["parameters"]
    }
    assert parameters["page"]["minimum"] == 1
