"""Many API clients creating jobs at once, and the checks that the database is consistent afterwards.

Each client is one user with one keep-alive connection that sends its requests one after the
other (a closed loop), all clients at once. Every request asks for a different job (a probe or
an enrichment of one of the user's items), so N requests must leave N jobs, all succeeded.
Used by tests/reliability/test_load.py (small) and bench/load_jobs.py (the full run).
"""

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.reliability import seed
from tests.support.reliability.invariants import (
    assert_event_log_is_whole,
    assert_index_converges,
    assert_no_job_is_left_active,
)
from tests.support.reliability.stack import Stack


@dataclass
class LoadReport:
    """What the clients saw."""

    clients: int
    requests: int
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    # Job id → kind, for every job the API accepted.
    jobs: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0


# The job lanes' queues under the app's default names: the default lane, the media lane, and
# the people queue of each (offload/jobs/lanes.py).
JOB_QUEUES = ["offload", "offload:people", "media", "media:people"]


def prepare(stack: Stack, clients: int, requests: int) -> list[tuple[str, list[str]]]:
    """Libraries of tiny clips for `clients` users; answer each user's token and request paths."""
    assert requests % (2 * clients) == 0, "each client asks for a probe and an enrichment per item"
    per_client = requests // (2 * clients)
    spec = {}
    for n in range(1, clients + 1):
        username = seed.load_username(n)
        files = [f"clip{i:03d}.mp4" for i in range(per_client)]
        folder = stack.media_folder(f"load/{username}", dict.fromkeys(files, "short"))
        spec[username] = {"path": str(folder), "files": files}
    spec_file = stack.folder / "libraries.json"
    spec_file.write_text(json.dumps(spec))
    made = seed.parse(
        stack.shell(f"from tests.support.reliability.seed import seed_libraries; seed_libraries({str(spec_file)!r})")
    )
    plans = []
    for username, library in made.items():
        paths = [f"/api/v1/media/{item}/{action}/" for item in library["items"] for action in ("probe", "enrich")]
        plans.append((stack.services.people[username].token, paths))
    return plans


async def _client(base_url: str, token: str, paths: list[str], report: LoadReport) -> None:
    headers = {"Authorization": f"Token {token}"}
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as http:
        for path in paths:
            key = uuid.uuid4().hex
            while True:
                begun = time.perf_counter()
                try:
                    response = await http.post(path, headers={"Idempotency-Key": key})
                except httpx.HTTPError as exc:
                    report.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                    break
                report.latencies.append(time.perf_counter() - begun)
                report.statuses[response.status_code] += 1
                if response.status_code == 429:
                    # By design: wait as told and ask again with the same key.
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status_code in (200, 202):
                    job = response.json()
                    report.jobs[job["id"]] = job["kind"]
                else:
                    report.errors.append(f"{path}: {response.status_code} {response.text[:200]}")
                break


def run_load(base_url: str, plans: list[tuple[str, list[str]]]) -> LoadReport:
    """Every client at once, each sending its requests in turn; answer what they saw."""
    report = LoadReport(clients=len(plans), requests=sum(len(paths) for _, paths in plans))
    # One line per request otherwise.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def main() -> None:
        await asyncio.gather(*(_client(base_url, token, paths, report) for token, paths in plans))

    report.started = time.time()
    begun = time.perf_counter()
    asyncio.run(main())
    report.elapsed = time.perf_counter() - begun
    return report


def assert_load_consistent(stack: Stack, report: LoadReport) -> None:
    """Every request made exactly one job; all succeeded at the first attempt; every item shows it."""
    assert not report.errors, report.errors[:10]
    assert set(report.statuses) <= {202, 429}, report.statuses
    assert len(report.jobs) == report.requests, "a request did not make a job of its own"
    rows = stack.db.rows("SELECT id, status, attempts FROM offload_job")
    assert {row[0] for row in rows} == set(report.jobs), "jobs the API never answered for"
    assert {(status, attempts) for _, status, attempts in rows} == {("succeeded", 1)}
    assert_no_job_is_left_active(stack)
    assert_event_log_is_whole(stack)
    stories = Counter(
        tuple(events)
        for (events,) in stack.db.rows(
            "SELECT array_agg(event ORDER BY seq) FROM offload_jobevent WHERE event <> 'progress' GROUP BY job_id"
        )
    )
    assert stories == {("queued", "started", "succeeded"): report.requests}, stories
    probed, enriched, total = stack.db.rows(
        "SELECT count(*) FILTER (WHERE status = 'ready' AND video_codec = 'h264'),"
        " count(*) FILTER (WHERE enriched_at IS NOT NULL), count(*) FROM offload_mediaitem"
    )[0]
    assert probed == enriched == total == report.requests // 2
    # Every task was acknowledged (the job lanes' queues, people's and backlog, are empty), and
    # none failed inside django-q2.
    stack.wait_until(
        lambda: stack.db.value("SELECT count(*) FROM django_q_ormq WHERE key = ANY(%s)", [JOB_QUEUES]) == 0,
        30,
        "the queue to empty",
    )
    assert stack.db.value("SELECT count(*) FROM django_q_task WHERE NOT success") == 0
    assert_index_converges(stack)


def figures(stack: Stack, report: LoadReport) -> dict[str, Any]:
    """The run's figures: request rate and latency, job throughput, queue wait and run time."""
    latencies = sorted(report.latencies)
    waits, runs, first, last = stack.db.rows(
        "SELECT array_agg(extract(epoch FROM started_at - created_at) ORDER BY 1),"
        " array_agg(extract(epoch FROM finished_at - started_at)), min(created_at), max(finished_at) FROM offload_job"
    )[0]
    waits, runs = sorted(float(w) for w in waits), sorted(float(r) for r in runs)
    drain = (last - first).total_seconds()
    by_kind = {
        kind: round(float(p50), 3)
        for kind, p50 in stack.db.rows(
            "SELECT kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))"
            " FROM offload_job GROUP BY kind ORDER BY kind"
        )
    }
    return {
        "clients": report.clients,
        "requests": report.requests,
        "statuses": dict(sorted(report.statuses.items())),
        "request_seconds": round(report.elapsed, 2),
        "requests_per_second": round(report.requests / report.elapsed, 1),
        "latency_ms": {p: round(1000 * percentile(latencies, p), 1) for p in (50, 95, 99, 100)},
        "jobs": len(report.jobs),
        "first_request_to_last_job_seconds": round(drain, 2),
        "jobs_per_second": round(len(report.jobs) / drain, 1),
        "queue_wait_seconds": {p: round(percentile(waits, p), 2) for p in (50, 95, 99, 100)},
        "run_seconds": {p: round(percentile(runs, p), 3) for p in (50, 95, 99, 100)},
        "run_seconds_p50_by_kind": by_kind,
    }


def percentile(ordered: list[float], pct: float) -> float:
    """The pct-th percentile of sorted values, by linear interpolation."""
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
