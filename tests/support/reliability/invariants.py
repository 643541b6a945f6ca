"""What must hold after any fault, read from the database, the disk and Typesense."""

import json
from collections import Counter

import requests

from search.documents import epoch_us
from tests.support.reliability.stack import TERMINAL, Stack
from tests.support.services import API_KEY

STATE_EVENTS = ("queued", "started", "succeeded", "failed", "cancelled")


def assert_every_accepted_job_finished(stack: Stack) -> dict[str, int]:
    """Each job the API accepted ended succeeded, or failed with a reason; answer the tally by status."""
    assert stack.accepted, "the test accepted no jobs"
    rows = stack.db.rows(
        "SELECT id, kind, status, error, attempts FROM offload_job WHERE id = ANY(%s)", [list(stack.accepted)]
    )
    assert {row[0] for row in rows} == set(stack.accepted), "an accepted job is missing from the database"
    for job_id, kind, status, error, attempts in rows:
        assert status in ("succeeded", "failed"), f"job {job_id} ({kind}) ended {status}"
        if status == "failed":
            assert error and error.strip(), f"job {job_id} ({kind}) failed without a reason"
        assert attempts >= 1, f"job {job_id} ({kind}) finished without running"
    return dict(Counter(row[2] for row in rows))


def assert_no_job_is_left_active(stack: Stack) -> None:
    """Nothing is queued or running any more: pipeline stages the jobs queued themselves included."""
    left = stack.db.rows("SELECT id, kind, status FROM offload_job WHERE status <> ALL(%s)", [list(TERMINAL)])
    assert not left, f"jobs still active: {left}"


def assert_event_log_is_whole(stack: Stack) -> None:
    """Seqs run 1..n without a gap or a repeat, and each job's log tells its story from queued to its end."""
    seqs = [row[0] for row in stack.db.rows("SELECT seq FROM offload_jobevent ORDER BY seq")]
    # The counter row is updated in the transaction that writes the event: a rollback takes both back.
    assert seqs == list(range(1, len(seqs) + 1)), "the event log has a gap"
    by_job: dict[int, list[str]] = {}
    for job_id, event in stack.db.rows(
        "SELECT job_id, event FROM offload_jobevent WHERE event = ANY(%s) ORDER BY seq", [list(STATE_EVENTS)]
    ):
        by_job.setdefault(job_id, []).append(event)
    for job_id, status in stack.job_statuses().items():
        events = by_job.get(job_id, [])
        assert events and events[0] == "queued", f"job {job_id}'s log starts with {events[:1]}"
        assert events[-1] == status, f"job {job_id} is {status} but its log ends with {events[-1]}"
        assert events.count(status) == 1, f"job {job_id} was announced {status} {events.count(status)} times"


def assert_renditions_are_unique(stack: Stack) -> int:
    """One rendition per (item, profile), each file on disk once, no half-written output left."""
    rows = stack.db.rows("SELECT item_id, profile, path FROM offload_rendition")
    counted = Counter((item, profile) for item, profile, _ in rows)
    assert all(n == 1 for n in counted.values()), f"duplicated renditions: {counted}"
    root = stack.media_root / "renditions"
    on_disk = {str(p.relative_to(stack.media_root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    assert on_disk == {path for _, _, path in rows}, f"files on disk {sorted(on_disk)} != renditions {rows}"
    partial = stack.media_root / ".partial"
    leftovers = sorted(p.name for p in partial.iterdir()) if partial.exists() else []
    assert not leftovers, f"partial outputs left behind: {leftovers}"
    return len(rows)


def _documents(stack: Stack) -> dict[int, tuple]:
    url = stack.services.typesense.url
    headers = {"X-TYPESENSE-API-KEY": API_KEY}
    alias = requests.get(f"{url}/aliases/{stack.alias}", headers=headers, timeout=10)
    if alias.status_code == 404:
        return {}
    alias.raise_for_status()
    collection = alias.json()["collection_name"]
    export = requests.get(
        f"{url}/collections/{collection}/documents/export",
        params={"include_fields": "id,updated_at,has_renditions,title"},
        headers=headers,
        timeout=30,
    )
    export.raise_for_status()
    docs = {}
    for line in export.text.splitlines():
        if line.strip():
            doc = json.loads(line)
            docs[int(doc["id"])] = (doc["updated_at"], doc["has_renditions"])
    return docs


def assert_index_converges(stack: Stack, timeout: float = 150.0) -> int:
    """The outbox drains and Typesense then holds every item exactly as the database has it.

    The bound allows for the slowest path the app has: rows a sync task leased (60 s) when it
    died, retried by the search lane's scheduled drain (every minute).
    """
    stack.wait_until(
        lambda: stack.db.value("SELECT count(*) FROM search_pendingsync") == 0, timeout, "the index outbox to drain"
    )
    rows = stack.db.rows(
        "SELECT i.id, i.updated_at, EXISTS (SELECT 1 FROM offload_rendition r WHERE r.item_id = i.id)"
        " FROM offload_mediaitem i"
    )
    expected = {pk: (epoch_us(updated), has) for pk, updated, has in rows}
    docs = _documents(stack)
    missing = sorted(set(expected) - set(docs))
    orphaned = sorted(set(docs) - set(expected))
    stale = sorted(pk for pk in set(expected) & set(docs) if expected[pk] != docs[pk])
    assert not (missing or orphaned or stale), f"index drift: missing {missing}, orphaned {orphaned}, stale {stale}"
    return len(docs)


def assert_consistent(stack: Stack) -> dict[str, int]:
    """Every invariant of the suite; answers the accepted jobs' tally by status."""
    tally = assert_every_accepted_job_finished(stack)
    assert_no_job_is_left_active(stack)
    assert_event_log_is_whole(stack)
    assert_renditions_are_unique(stack)
    assert_index_converges(stack)
    return tally
