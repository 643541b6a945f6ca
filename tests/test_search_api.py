"""GET /api/v1/search/ per docs/api.md: typos, prefixes, facets, highlights, filters, access, fallback."""

import pytest
from django.contrib.admin.sites import site as admin_site
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import RequestFactory

from offload.models import Library, MediaItem
from search.changelist import changelist_search
from tests.support.search import drain_search_lane

pytestmark = pytest.mark.django_db

CATALOGUE = [
    # title, kind, year, genres, extra
    ("Inception", "movie", 2010, ["Sci-Fi", "Thriller"], {"people": ["Leonardo DiCaprio"]}),
    ("The Matrix", "movie", 1999, ["Sci-Fi", "Action"], {"overview": "A hacker learns the truth."}),
    ("Heat", "movie", 1995, ["Crime", "Drama"], {"tags": ["heist"]}),
    ("Pilot", "episode", 2008, ["Drama"], {"series_title": "Breaking Bad"}),
    ("Blue in Green", "track", 1959, ["Jazz"], {}),
]


@pytest.fixture
def catalogue(index, alice, bob, tmp_path, django_capture_on_commit_callbacks):
    """Alice's five items in one library, bob's one in another, all indexed."""
    alices = Library.objects.create(name="Alice's", path=str(tmp_path / "a"), owner=alice)
    bobs = Library.objects.create(name="Bob's", path=str(tmp_path / "b"), owner=bob)
    items = {}
    with django_capture_on_commit_callbacks(execute=True):
        for title, kind, year, genres, extra in CATALOGUE:
            items[title] = MediaItem.objects.create(
                library=alices, relative_path=f"{title}.mkv", title=title, kind=kind, year=year, genres=genres, **extra
            )
        items["Bob's Inception Notes"] = MediaItem.objects.create(
            library=bobs, relative_path="notes.mkv", title="Bob's Inception Notes", kind="other", year=2011
        )
    drain_search_lane()
    return {"alice": alices, "bob": bobs, "items": items}


def search(client, **params):
    response = client.get("/api/v1/search/", params)
    assert response.status_code == 200, response.content
    return response.json()


def titles(answer) -> list[str]:
    return [hit["title"] for hit in answer["hits"]]


def test_a_typo_still_finds_the_title(alice_api, catalogue):
    answer = search(alice_api, q="Incepton")
    assert titles(answer) == ["Inception"]
    assert answer["degraded"] is False


def test_a_prefix_finds_the_title(alice_api, catalogue):
    assert titles(search(alice_api, q="incep")) == ["Inception"]


def test_people_tags_overview_and_series_are_searched(alice_api, catalogue):
    assert titles(search(alice_api, q="DiCaprio")) == ["Inception"]
    assert titles(search(alice_api, q="heist")) == ["Heat"]
    assert titles(search(alice_api, q="hacker")) == ["The Matrix"]
    assert titles(search(alice_api, q="Breaking")) == ["Pilot"]


def test_hits_carry_highlights(alice_api, catalogue):
    hit = search(alice_api, q="matrix")["hits"][0]
    assert hit["highlight"]["title"] == "The <mark>Matrix</mark>"
    assert hit["id"] == catalogue["items"]["The Matrix"].pk
    assert hit["kind"] == "movie" and hit["year"] == 1999 and hit["genres"] == ["Sci-Fi", "Action"]


def test_facets_count_what_was_found(alice_api, catalogue):
    facets = search(alice_api)["facets"]
    assert facets["kind"] == {"movie": 3, "episode": 1, "track": 1}
    assert facets["genres"]["Sci-Fi"] == 2 and facets["genres"]["Drama"] == 2
    assert facets["year"]["1999"] == 1
    assert facets["library"] == {str(catalogue["alice"].pk): 5}


def test_filters_on_kind_genre_years_and_library(alice_api, catalogue):
    assert sorted(titles(search(alice_api, kind="movie"))) == ["Heat", "Inception", "The Matrix"]
    assert sorted(titles(search(alice_api, genre="Drama"))) == ["Heat", "Pilot"]
    assert sorted(titles(search(alice_api, year_from=1995, year_to=2008))) == ["Heat", "Pilot", "The Matrix"]
    assert sorted(titles(search(alice_api, kind="movie", genre="Sci-Fi", year_to=2000))) == ["The Matrix"]
    assert search(alice_api, library=catalogue["alice"].pk)["found"] == 5


def test_pagination_and_sorting(alice_api, catalogue):
    by_year = search(alice_api, sort="year", per_page=2)
    assert by_year["found"] == 5 and by_year["per_page"] == 2
    assert titles(by_year) == ["Blue in Green", "Heat"]
    assert titles(search(alice_api, sort="year", per_page=2, page=3)) == ["Inception"]
    assert titles(search(alice_api, sort="-year", per_page=1)) == ["Inception"]
    assert titles(search(alice_api, sort="title", per_page=2)) == ["Blue in Green", "Heat"]
    assert titles(search(alice_api, sort="-added", per_page=1)) == ["Blue in Green"]
    assert titles(search(alice_api, sort="added", per_page=1)) == ["Inception"]


def test_bob_finds_none_of_alices_items(bob_api, catalogue):
    answer = search(bob_api, q="inception")
    assert titles(answer) == ["Bob's Inception Notes"]
    assert search(bob_api, library=catalogue["alice"].pk)["found"] == 0


def test_staff_find_everyones_items(staff_api, catalogue):
    assert sorted(titles(search(staff_api, q="inception"))) == ["Bob's Inception Notes", "Inception"]


def test_a_user_without_libraries_finds_nothing(db, index, django_user_model):
    from tests.support.people import api_client_for, make_user

    carol = api_client_for(make_user("carol"))
    assert search(carol, q="anything") == {
        "found": 0,
        "page": 1,
        "per_page": 20,
        "degraded": False,
        "hits": [],
        "facets": {},
    }


@pytest.mark.parametrize(
    "params",
    [
        {"year_from": "abc"},
        {"per_page": "1000"},
        {"page": "0"},
        {"sort": "bogus"},
        {"kind": "film"},
        {"year_from": "2001", "year_to": "1999"},
    ],
)
def test_bad_input_answers_400_with_json(alice_api, index, params):
    response = alice_api.get("/api/v1/search/", params)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"


def test_an_unchanged_answer_is_a_304_with_its_etag(alice_api, catalogue):
    first = alice_api.get("/api/v1/search/", {"q": "heat"})
    assert first.status_code == 200 and first["ETag"]
    again = alice_api.get("/api/v1/search/", {"q": "heat"}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    other = alice_api.get("/api/v1/search/", {"q": "inception"}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert other.status_code == 200


def test_anonymous_searches_get_401(anon_api):
    assert anon_api.get("/api/v1/search/", {"q": "x"}).status_code == 401


def test_an_edit_is_not_hidden_by_a_cached_answer(alice_api, catalogue, settings, django_capture_on_commit_callbacks):
    settings.SEARCH_CACHE_SECONDS = 30
    assert titles(search(alice_api, q="heat")) == ["Heat"]
    assert titles(search(alice_api, q="heat")) == ["Heat"]  # answered from the cache
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.patch(
            f"/api/v1/media/{catalogue['items']['Heat'].pk}/", {"title": "Heatwave"}, format="json"
        )
    assert response.status_code == 200
    drain_search_lane()
    assert titles(search(alice_api, q="heatwave")) == ["Heatwave"]
    assert titles(search(alice_api, q="heat")) == ["Heatwave"]


def test_unreachable_typesense_answers_from_the_database_degraded(alice_api, catalogue, settings):
    settings.TYPESENSE_URL = "http://127.0.0.1:9"
    answer = search(alice_api, q="Incep", kind="movie")
    assert answer["degraded"] is True
    assert titles(answer) == ["Inception"]
    assert answer["hits"][0]["highlight"] == {"title": "<mark>Incep</mark>tion"}
    assert answer["facets"]["kind"] == {"movie": 1}
    # Access and filters hold in the fallback too.
    assert search(alice_api, genre="Drama", year_from=1996)["found"] == 1
    assert sorted(titles(search(alice_api, q="dicaprio"))) == ["Inception"]
    assert search(alice_api, library=catalogue["bob"].pk)["found"] == 0


def test_ready_reports_search_degraded_while_typesense_is_unreachable(anon_api, db, settings):
    settings.TYPESENSE_URL = "http://127.0.0.1:9"
    body = anon_api.get("/healthz/ready").json()
    assert body["status"] == "degraded"
    assert body["checks"]["search"].startswith("degraded")


def test_the_admin_changelist_search_goes_through_typesense(catalogue, staff):
    model_admin = admin_site._registry[MediaItem]
    request = RequestFactory().get("/admin/offload/mediaitem/", {"q": "Incepton"})
    request.user = staff
    found, _ = changelist_search(request, MediaItem.objects.all(), "Incepton", fallback=model_admin.get_search_results)
    # A typo only Typesense forgives.
    assert sorted(found.values_list("title", flat=True)) == ["Bob's Inception Notes", "Inception"]


def test_the_admin_changelist_search_falls_back_to_the_database(catalogue, staff, settings):
    settings.TYPESENSE_URL = "http://127.0.0.1:9"
    model_admin = admin_site._registry[MediaItem]
    request = RequestFactory().get("/admin/offload/mediaitem/", {"q": "Incep"})
    request.user = staff
    request._messages = CookieStorage(request)
    found, _ = changelist_search(request, MediaItem.objects.all(), "Incep", fallback=model_admin.get_search_results)
    assert sorted(found.values_list("title", flat=True)) == ["Bob's Inception Notes", "Inception"]
    typo, _ = changelist_search(request, MediaItem.objects.all(), "Incepton", fallback=model_admin.get_search_results)
    assert not typo.exists()
    assert any("degraded" in str(message) for message in request._messages)


def test_script_in_a_title_is_escaped_in_highlights(
    alice_api, alice, index, tmp_path, django_capture_on_commit_callbacks
):
    library = Library.objects.create(name="L", path=str(tmp_path / "x"), owner=alice)
    with django_capture_on_commit_callbacks(execute=True):
        MediaItem.objects.create(library=library, relative_path="x.mkv", title='Zebra <script>alert("x")</script>')
    drain_search_lane()
    hit = search(alice_api, q="zebra")["hits"][0]
    assert hit["title"] == 'Zebra <script>alert("x")</script>'  # data, as stored
    assert hit["highlight"]["title"] == "<mark>Zebra</mark> &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


def test_genres_and_the_other_text_facets_are_searched(alice_api, catalogue):
    assert sorted(titles(search(alice_api, q="Drama"))) == ["Heat", "Pilot"]
    assert titles(search(alice_api, q="Jazz")) == ["Blue in Green"]
    assert titles(search(alice_api, q="episode")) == ["Pilot"]


def admin_search(staff, term: str) -> list[str]:
    """The titles the media changelist's search finds for a term, sorted."""
    request = RequestFactory().get("/admin/offload/mediaitem/", {"q": term})
    request.user = staff
    request._messages = CookieStorage(request)
    fallback = admin_site._registry[MediaItem].get_search_results
    found, _ = changelist_search(request, MediaItem.objects.all(), term, fallback=fallback)
    return sorted(found.values_list("title", flat=True))


def test_the_admin_finds_items_by_genre_through_typesense_and_the_database(catalogue, staff, settings):
    assert admin_search(staff, "Drama") == ["Heat", "Pilot"]
    settings.TYPESENSE_URL = "http://127.0.0.1:9"
    assert admin_search(staff, "Drama") == ["Heat", "Pilot"]


def test_the_database_fallback_searches_genres_too(alice_api, catalogue, settings):
    settings.TYPESENSE_URL = "http://127.0.0.1:9"
    answer = search(alice_api, q="Drama")
    assert answer["degraded"] is True
    assert sorted(titles(answer)) == ["Heat", "Pilot"]
