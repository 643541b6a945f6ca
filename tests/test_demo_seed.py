"""The demo data behind `make run`: playable generated files, an idempotent seed, a usable admin login."""

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from offload import demo
from offload.lib import ffmpeg
from offload.models import ACTIVE_STATUSES, Job, Library

SPECS = {spec.relative_path: spec for spec in demo.DEMO_FILES}


@pytest.fixture(scope="module")
def generated_root(tmp_path_factory) -> Path:
    """A library root with the demo folder generated once for the module: ffmpeg is the slow part."""
    root = tmp_path_factory.mktemp("library").resolve()
    demo.write_demo_files(root / demo.DEMO_FOLDER_NAME)
    return root


@pytest.fixture
def demo_root(generated_root, settings) -> Path:
    settings.OFFLOAD_LIBRARY_ROOTS = [generated_root]
    return generated_root


def ensure_admin(*args: str) -> dict:
    out = StringIO()
    call_command("ensure_admin", "--json", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


# --- Generating the files ---------------------------------------------------------


def test_commands_are_argument_lists_writing_through_the_file_protocol(tmp_path):
    song = SPECS["Music/Demo Artist/Demo Album/01 - Demo Song.m4a"]
    args = demo.build_command("ffmpeg", song, tmp_path / "-odd name.m4a")
    assert all(isinstance(arg, str) for arg in args)
    assert args[-1] == "file:" + str((tmp_path / "-odd name.m4a").resolve())
    assert args[-3:-1] == ["-f", "ipod"]
    for tag in ("title=Demo Song", "artist=Demo Artist", "album=Demo Album", "genre=Electronic", "date=2020"):
        assert tag in args
    assert "libx264" not in args

    movie = SPECS["Movies/Big Test Pattern (2009)/Big Test Pattern (2009).mp4"]
    args = demo.build_command("ffmpeg", movie, tmp_path / "out.mp4")
    assert "testsrc2=size=320x180:rate=25:duration=4" in args
    assert args[args.index("-c:v") + 1] == "libx264"
    assert args[args.index("-preset") + 1] == "veryfast"
    assert args[args.index("-c:a") + 1] == "aac"


def test_demo_files_are_playable_media(generated_root):
    folder = generated_root / demo.DEMO_FOLDER_NAME
    for spec in demo.DEMO_FILES:
        data = ffmpeg.probe(folder / spec.relative_path)
        technical = ffmpeg.technical_metadata(data)
        assert technical["audio_codec"] == "aac", spec.relative_path
        assert technical["duration"] == pytest.approx(demo.DURATION_SECONDS, abs=0.5), spec.relative_path
        if spec.video_source:
            assert technical["video_codec"] == "h264", spec.relative_path
            assert (technical["width"], technical["height"]) == (320, 180), spec.relative_path
        else:
            assert technical["video_codec"] == "", spec.relative_path
            tags = ffmpeg.format_tags(data)
            assert tags["title"] == "Demo Song"
            assert tags["artist"] == "Demo Artist"
            assert tags["album"] == "Demo Album"
            assert tags["genre"] == "Electronic"
            assert tags["date"] == "2020"

    colour_bars = ffmpeg.probe(folder / "Movies/The Colour Bars (2014)/The Colour Bars (2014).mkv")
    assert ffmpeg.technical_metadata(colour_bars)["languages"] == ["eng"]
    assert not [p for p in folder.rglob(".*")], "no partial file is left behind"


def test_files_already_there_are_not_generated_again(generated_root):
    folder = generated_root / demo.DEMO_FOLDER_NAME
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert len(before) == len(demo.DEMO_FILES)

    assert demo.write_demo_files(folder) == []
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_a_failing_ffmpeg_leaves_no_file(tmp_path):
    failing = shutil.which("false")
    assert failing
    with pytest.raises(demo.DemoError, match="could not make"):
        demo.write_demo_files(tmp_path / "demo", binary=failing)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


# --- seed_demo --------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_makes_one_library_and_one_active_scan_however_often_it_runs(demo_root):
    login = ensure_admin()
    admin = get_user_model().objects.get(username=login["username"])

    first = seed()
    second = seed()

    library = Library.objects.get()
    assert library.name == demo.DEMO_LIBRARY_NAME
    assert library.path == str(demo_root / demo.DEMO_FOLDER_NAME)
    assert library.owner == admin
    scans = Job.objects.filter(kind="library.scan", target_type="library", target_id=library.pk)
    assert scans.count() == 1
    scan = scans.get()
    assert scan.status in ACTIVE_STATUSES
    assert scan.requested_by == admin
    assert "created" in first
    assert "already there" in second
    assert f"Scan job #{scan.pk} already queued" in second


@pytest.mark.django_db
def test_seed_demo_keeps_a_renamed_demo_library(demo_root):
    ensure_admin()
    seed()
    Library.objects.update(name="My samples")

    seed()

    assert list(Library.objects.values_list("name", flat=True)) == ["My samples"]


@pytest.mark.django_db
def test_seed_demo_without_its_owner_says_what_to_run(demo_root):
    with pytest.raises(CommandError, match="ensure_admin"):
        seed()
    assert not Library.objects.exists()


# --- ensure_admin -----------------------------------------------------------------


@pytest.mark.django_db
def test_ensure_admin_creates_a_superuser_with_a_usable_password_and_token(client):
    login = ensure_admin()

    user = get_user_model().objects.get(username="admin")
    assert login["created"] is True
    assert user.is_superuser and user.is_staff and user.is_active
    assert login["password"] and user.check_password(login["password"])
    assert client.login(username="admin", password=login["password"])
    assert client.get("/admin/").status_code == 200
    assert Token.objects.get(user=user).key == login["token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {login['token']}")
    assert api.get("/api/v1/jobs/").status_code == 200


@pytest.mark.django_db
def test_ensure_admin_changes_the_password_only_when_asked():
    first = ensure_admin()

    kept = ensure_admin()
    user = get_user_model().objects.get(username="admin")
    assert kept["created"] is False
    assert kept["password"] is None
    assert kept["token"] == first["token"]
    assert user.check_password(first["password"])

    reset = ensure_admin("--reset-password")
    user.refresh_from_db()
    assert reset["password"] and reset["password"] != first["password"]
    assert user.check_password(reset["password"])
    assert not user.check_password(first["password"])
    assert reset["token"] == first["token"]
    assert get_user_model().objects.filter(username="admin").count() == 1


@pytest.mark.django_db
def test_ensure_admin_restores_a_demoted_admin():
    ensure_admin()
    get_user_model().objects.filter(username="admin").update(is_superuser=False, is_staff=False, is_active=False)

    ensure_admin()

    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.is_staff and user.is_active


@pytest.mark.django_db
def test_ensure_admin_text_output_prints_the_login():
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    text = out.getvalue()
    token = Token.objects.get(user__username="admin").key
    assert 'Superuser "admin" created.' in text
    assert "password:" in text
    assert token in text
