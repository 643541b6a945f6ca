"""`reindex` and `search_drift` show counts and an ETA: a live line on a terminal, plain lines otherwise."""

import io
import re

import pytest
from django.core.management import call_command

from offload.models import Library, MediaItem
from search.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_one_line_is_redrawn_with_counts_rate_and_eta():
    out, clock = Terminal(), Clock()
    progress = Progress(out, "reindex", clock=clock)
    for done in (0, 250, 500, 1000):
        clock.now += 1.0
        progress.update(done, 1000)
    progress.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    frames = [frame for frame in text.split("\r\x1b[2K") if frame]
    assert frames[1] == "reindex: 250/1000 (25%), 125/s, ETA 0:06"
    assert frames[2] == "reindex: 500/1000 (50%), 167/s, ETA 0:03"
    assert frames[-1].strip() == "reindex: 1000/1000 (100%), 250/s"


def test_without_a_terminal_plain_lines_at_each_tenth_and_no_control_characters():
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, "search_drift", clock=clock)
    for done in range(0, 1001, 50):
        clock.now += 0.5
        progress.update(done, 1000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[5] == "search_drift: 500/1000 (50%), 91/s, ETA 0:06"
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


@pytest.fixture
def library(alice, tmp_path):
    return Library.objects.create(name="L", path=str(tmp_path), owner=alice)


def seed(library: Library, count: int) -> None:
    MediaItem.objects.bulk_create(
        MediaItem(library=library, relative_path=f"f{i}.mp4", title=f"Title {i}") for i in range(count)
    )


@pytest.mark.django_db(transaction=True)
def test_reindex_prints_counts_instead_of_a_percentage_held_at_90(index, library):
    seed(library, 12)
    out = io.StringIO()
    call_command("reindex", "--batch-size", "5", stdout=out)
    text = out.getvalue()
    assert re.search(r"^reindex: 5/12 \(42%\)", text, re.M)
    assert re.search(r"^reindex: 12/12 \(100%\)", text, re.M)
    assert "reindex: replaying 0 writes made during the copy" in text
    assert "is live: 12 documents" in text
    assert "90.0%" not in text


@pytest.mark.django_db(transaction=True)
def test_reindex_on_a_terminal_redraws_its_line(index, library):
    seed(library, 12)
    out = Terminal()
    call_command("reindex", "--batch-size", "5", stdout=out)
    assert "\rreindex" in out.getvalue().replace("\x1b[2K", "")
    assert "reindex: 12/12 (100%)" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_search_drift_reports_progress_while_it_works(index, library, monkeypatch):
    seed(library, 30)
    call_command("reindex", stdout=io.StringIO())
    monkeypatch.setattr("search.drift.PROGRESS_EVERY", 10)
    out = io.StringIO()
    call_command("search_drift", stdout=out)
    text = out.getvalue()
    assert "search_drift: exporting the index" in text
    assert re.search(r"^search_drift: 10/30 \(33%\)", text, re.M)
    assert re.search(r"^search_drift: 30/30 \(100%\)", text, re.M)
    assert "missing: 0" in text
