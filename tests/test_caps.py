"""A concurrency cap is read by one set of rules, wherever an operator types it."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from offload.caps import CapError, max_concurrency, parse_cap
from offload.models import QueueControl

CHANGE = "/admin/operations/queues/change/"
KIND = "media.transcode"


@pytest.mark.parametrize(
    ("raw", "cap"),
    [("1", 1), (" 7 ", 7), ("+3", 3), (2, 2), ("", None), ("  ", None), ("none", None), ("None", None),
     ("null", None), ("OFF", None), (None, None)],
)  # fmt: skip
def test_a_cap_is_a_whole_number_from_one_or_blank_or_none_for_no_cap(raw, cap, db):
    assert parse_cap(raw) == cap


def test_the_largest_cap_is_the_largest_the_column_holds(db):
    assert parse_cap(str(max_concurrency())) == max_concurrency()


@pytest.mark.parametrize("raw", ["many", "1.5", "1e3", "1_000", "\u0663", "0x10", "2 3", 1.0, True, [1]])
def test_anything_but_a_whole_number_is_refused_as_such(raw, db):
    with pytest.raises(CapError, match="A cap is a whole number"):
        parse_cap(raw)


@pytest.mark.parametrize("raw", ["0", "-3", 0, -1, "9223372036854775808", "OUT_OF_RANGE"])
def test_a_cap_out_of_bounds_is_refused_with_the_bounds(raw, db):
    raw = str(max_concurrency() + 1) if raw == "OUT_OF_RANGE" else raw
    with pytest.raises(CapError, match=f"at least 1 and at most {max_concurrency()}"):
        parse_cap(raw)


def through_the_admin(client, raw: str) -> tuple[str, object]:
    response = client.post(CHANGE, {"change": "cap", "kind": KIND, "concurrency": raw, "confirmed": "yes"}, follow=True)
    refused = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    return _outcome(refused[0] if refused else None)


def through_the_command(raw: str) -> tuple[str, object]:
    try:
        call_command("queues", "--cap", KIND, raw, stdout=StringIO(), stderr=StringIO())
    except CommandError as refused:
        return _outcome(str(refused))
    return _outcome(None)


def _outcome(refusal: str | None) -> tuple[str, object]:
    control = QueueControl.objects.filter(kind=KIND).first()
    QueueControl.objects.filter(kind=KIND).update(concurrency=5)
    if refusal:
        return ("refused", refusal)
    return ("set", control.concurrency)


@pytest.mark.parametrize(
    "raw", ["2", " 4 ", "", "none", "Off", "0", "-3", "many", "1.5", "1_000", "\u0663", "OUT_OF_RANGE"]
)
def test_the_admin_and_the_command_answer_a_cap_the_same_way(raw, admin_client):
    raw = str(max_concurrency() + 1) if raw == "OUT_OF_RANGE" else raw
    QueueControl.objects.create(kind=KIND, concurrency=5)
    try:
        expected = ("set", parse_cap(raw))
    except CapError as refused:
        expected = ("refused", str(refused))
    assert through_the_admin(admin_client, raw) == expected
    assert through_the_command(raw) == expected


def test_the_apis_bounds_are_the_parsers(staff_api):
    url = f"/api/v1/queues/{KIND}/"
    assert staff_api.patch(url, {"concurrency": max_concurrency() + 1}, format="json").status_code == 400
    assert (
        staff_api.patch(url, {"concurrency": max_concurrency()}, format="json").json()["concurrency"]
        == max_concurrency()
    )
    assert staff_api.patch(url, {"concurrency": 0}, format="json").status_code == 400
    assert staff_api.patch(url, {"concurrency": None}, format="json").json()["concurrency"] is None
