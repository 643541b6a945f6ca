"""Search documents, Typesense parameters and answers: pure functions, no I/O."""

from datetime import UTC, datetime

from search import typesense as ts
from search.documents import DOCUMENT_FIELDS, build_document, epoch_us, names, resolution_label
from search.query import MARK_END, MARK_START, SearchRequest, build_params, map_answer


def row(**fields) -> dict:
    """An item row as the sync reads it: every document field, and whether it has renditions."""
    defaults = {
        "id": 7,
        "library_id": 3,
        "relative_path": "films/the_matrix.1999.mkv",
        "kind": "movie",
        "title": "",
        "original_title": "",
        "series_title": "",
        "overview": "",
        "year": None,
        "genres": [],
        "people": [],
        "tags": [],
        "duration": None,
        "width": None,
        "height": None,
        "created_at": datetime(2024, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC),
        "updated_at": datetime(2024, 2, 3, 4, 5, 6, 700_001, tzinfo=UTC),
        "has_renditions": False,
    }
    assert set(fields) <= set(defaults)
    return {**defaults, **fields}


def test_resolution_labels_judge_widescreen_frames_by_width():
    assert resolution_label(1920, 1080) == "1080p"
    assert resolution_label(1920, 800) == "1080p"
    assert resolution_label(3840, 2160) == "2160p"
    assert resolution_label(1280, 720) == "720p"
    assert resolution_label(640, 360) == "SD"
    assert resolution_label(None, None) is None


def test_names_accept_strings_and_name_objects():
    assert names(["Drama", {"name": "Keanu Reeves", "role": "Neo"}, "", None, 42]) == ["Drama", "Keanu Reeves", "42"]
    assert names(None) == []


def test_epoch_microseconds_are_exact():
    moment = datetime(2024, 2, 3, 4, 5, 6, 700_001, tzinfo=UTC)
    assert epoch_us(moment) == int(moment.timestamp()) * 1_000_000 + 700_001


def test_a_document_has_the_contract_fields_and_leaves_out_empty_optionals():
    doc = build_document(
        row(
            title="The Matrix",
            year=1999,
            genres=["Sci-Fi"],
            people=["Keanu Reeves"],
            width=1920,
            height=800,
            has_renditions=True,
        )
    )
    assert doc["id"] == "7"
    assert doc["title"] == "The Matrix" and doc["title_sort"] == "the matrix"
    assert doc["library"] == 3 and doc["kind"] == "movie" and doc["year"] == 1999
    assert doc["genres"] == ["Sci-Fi"] and doc["people"] == ["Keanu Reeves"] and doc["tags"] == []
    assert doc["resolution"] == "1080p" and doc["has_renditions"] is True
    assert doc["updated_at"] == epoch_us(datetime(2024, 2, 3, 4, 5, 6, 700_001, tzinfo=UTC))
    assert "overview" not in doc and "duration" not in doc and "original_title" not in doc


def test_rows_carry_every_field_a_document_needs():
    assert set(DOCUMENT_FIELDS) | {"has_renditions"} == set(row())


def test_an_item_without_a_title_is_found_by_its_file_name():
    doc = build_document(row(title=""))
    assert doc["title"] == "the_matrix.1999"


def test_the_schema_facets_kind_genres_year_library_and_resolution():
    schema = ts.media_schema("media_v1")
    faceted = {f["name"] for f in schema["fields"] if f.get("facet")}
    assert faceted == {"kind", "genres", "year", "library", "resolution"}
    fields = {f["name"] for f in schema["fields"]}
    assert {"title", "original_title", "overview", "people", "tags", "duration", "has_renditions"} <= fields
    assert {"updated_at", "created_at"} <= fields


def test_params_search_every_contract_field_with_typos_prefixes_and_facets():
    params = build_params(SearchRequest(q="matrx"), None)
    assert params["q"] == "matrx"
    assert params["query_by"].split(",")[:2] == ["title", "original_title"]
    assert {"overview", "people", "tags"} <= set(params["query_by"].split(","))
    assert params["num_typos"] == 2 and params["prefix"] == "true"
    assert params["facet_by"] == "kind,genres,year,library,resolution"
    assert "filter_by" not in params


def test_params_restrict_to_visible_libraries_and_apply_filters():
    request = SearchRequest(q="", kind="movie", genre="Sci-Fi", year_from=1990, year_to=2000, page=2, per_page=5)
    params = build_params(request, [1, 4])
    assert params["q"] == "*"
    assert params["filter_by"] == (
        "library:=[1,4] && kind:=`movie` && genres:=[`Sci-Fi`] && year:>=1990 && year:<=2000"
    )
    assert (params["page"], params["per_page"]) == (2, 5)


def test_params_for_a_library_the_user_cannot_see_find_nothing():
    assert build_params(SearchRequest(library=9), [1, 4]) is None
    assert build_params(SearchRequest(), []) is None
    assert build_params(SearchRequest(library=4), [1, 4])["filter_by"] == "library:=[4]"
    assert build_params(SearchRequest(library=9), None)["filter_by"] == "library:=[9]"


def test_filter_values_cannot_break_out_of_their_quotes():
    params = build_params(SearchRequest(genre="Drama` || library:=[99]"), [1])
    assert params["filter_by"] == "library:=[1] && genres:=[`Drama || library:=[99]`]"


def test_sorts_by_year_title_and_date_added():
    assert build_params(SearchRequest(sort="-year"), None)["sort_by"].startswith("year:desc")
    assert build_params(SearchRequest(sort="title"), None)["sort_by"] == "title_sort:asc"
    assert build_params(SearchRequest(sort="-added"), None)["sort_by"] == "created_at:desc"


def test_answers_take_the_contract_shape():
    raw = {
        "found": 3,
        "hits": [
            {
                "document": {"id": "5", "title": "The Matrix", "kind": "movie", "year": 1999, "genres": ["Sci-Fi"]},
                "highlights": [
                    # As Typesense answers with the query's highlight tags.
                    {"field": "title", "snippet": f"The {MARK_START}Matrix{MARK_END}", "matched_tokens": ["Matrix"]},
                    {
                        "field": "people",
                        "snippets": [f"{MARK_START}Keanu{MARK_END} Reeves"],
                        "matched_tokens": [["Keanu"]],
                    },
                ],
            }
        ],
        "facet_counts": [
            {"field_name": "kind", "counts": [{"value": "movie", "count": 2}, {"value": "episode", "count": 1}]},
            {"field_name": "genres", "counts": [{"value": "Drama", "count": 2}]},
        ],
    }
    answer = map_answer(raw, SearchRequest(q="matrix"))
    assert answer == {
        "found": 3,
        "page": 1,
        "per_page": 20,
        "degraded": False,
        "hits": [
            {
                "id": 5,
                "title": "The Matrix",
                "kind": "movie",
                "year": 1999,
                "genres": ["Sci-Fi"],
                "library": None,
                "highlight": {"title": "The <mark>Matrix</mark>", "people": ["<mark>Keanu</mark> Reeves"]},
            }
        ],
        "facets": {"kind": {"movie": 2, "episode": 1}, "genres": {"Drama": 2}},
    }
