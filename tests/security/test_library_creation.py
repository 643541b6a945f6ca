"""Creating a library (OFFLOAD_USERS_CREATE_LIBRARIES=1): nothing gained beyond one's own, nothing learned."""

import pytest

from offload.models import Library, MediaItem
from tests.support.people import api_client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def carol(db):
    return make_user("carol")


@pytest.fixture
def alices(alice, carol, library_root, settings):
    """Alice's library at <root>/alice with carol as a member, a secret film folder inside it."""
    settings.OFFLOAD_USERS_CREATE_LIBRARIES = True
    folder = library_root / "alice"
    (folder / "Secret Film (2021)").mkdir(parents=True)
    library = Library.objects.create(name="Alice's", path=str(folder), owner=alice)
    library.members.add(carol)
    return library


def create(user, path: str):
    return api_client_for(user).post("/api/v1/libraries/", {"name": "Mine", "path": path}, format="json")


def test_a_member_cannot_take_the_folder_of_a_library_she_belongs_to(alices, carol):
    response = create(carol, "alice")
    assert response.status_code == 400
    assert Library.objects.filter(owner=carol).count() == 0
    # Removing her membership then removes all of her access.
    alices.members.remove(carol)
    MediaItem.objects.create(library=alices, relative_path="new.mkv", title="New")
    assert api_client_for(carol).get("/api/v1/media/").json()["count"] == 0


@pytest.mark.parametrize("path", ["alice/Secret Film (2021)", "alice/Nope", "alice/../alice/Nope"])
def test_a_folder_inside_someone_elses_library_answers_the_same_whether_it_exists_or_not(alices, bob, path):
    response = create(bob, path)
    assert response.status_code == 400
    assert response.json() == {"path": ["This folder overlaps a library you do not own; choose another folder."]}


def test_a_link_into_someone_elses_library_answers_as_the_folder_would_and_names_no_target(alices, bob, library_root):
    (library_root / "links").mkdir()
    (library_root / "links" / "there").symlink_to(library_root / "alice" / "Secret Film (2021)")
    (library_root / "links" / "nowhere").symlink_to(library_root / "alice" / "Nope")
    answers = [create(bob, f"links/{name}").json() for name in ("there", "nowhere")]
    assert answers[0] == answers[1]
    assert "alice" not in str(answers[0]) and "Secret" not in str(answers[0])


def test_a_missing_folder_is_named_as_given_not_where_a_link_leads(alices, bob, library_root, tmp_path):
    (library_root / "mine").mkdir()
    (library_root / "mine" / "link").symlink_to(library_root / "elsewhere" / "hidden")
    reason = create(bob, "mine/link").json()["path"][0]
    assert "elsewhere" not in reason and "hidden" not in reason
    assert "mine/link" in reason
