"""The console's and the API's cost as the job table grows: each page and list timed at 100,000
and 1,000,000 jobs (and a tenth as many media items), in-process, with the answer caches cleared.

The table is filled as a year of a busy library leaves it under the default retention: finished
jobs spread over the last 30 days (95 % succeeded, 3 % failed, 2 % cancelled), a few hundred
queued and running, the last day's events, and the rollups the minute schedule keeps. Each
request runs once to warm up, then --runs times; the median is reported, with the growth
between the sizes.

    .venv/bin/python bench/scale.py [--sizes 100000 1000000] [--runs 5]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

KINDS = ("media.probe", "media.thumbnail", "media.enrich", "media.transcode", "library.scan")
FILL_JOBS = """
INSERT INTO offload_job (kind, status, progress, target_type, target_id, params, params_hash, attempts,
    max_attempts, error, result, requested_by_id, created_at, queued_at, started_at, finished_at, heartbeat_at,
    cancel_requested_at, cancelled_by_id, task_id, "then", idempotency_key, log_tail, traceback,
    failure_group, failure_exception, failure_message, priority, has_members)
SELECT (%(kinds)s::text[])[1 + i %% 5],
       CASE WHEN i %% 100 < 95 THEN 'succeeded' WHEN i %% 100 < 98 THEN 'failed' ELSE 'cancelled' END,
       100, 'media', 1 + i %% %(items)s, '{}'::jsonb, md5(i::text), 1, 3,
       CASE WHEN i %% 100 BETWEEN 95 AND 97 THEN 'The source is not readable media: error ' || (i %% 7) END,
       NULL, %(user)s, ts - interval '5 seconds', ts - interval '5 seconds', ts - interval '3 seconds', ts, ts,
       NULL, NULL, '', '[]'::jsonb, '', '', '',
       -- A failure's group, as the spine stores it when a job fails.
       CASE WHEN i %% 100 BETWEEN 95 AND 97 THEN substr(md5((%(kinds)s::text[])[1 + i %% 5] || (i %% 7)), 1, 16)
            ELSE '' END,
       CASE WHEN i %% 100 BETWEEN 95 AND 97 THEN 'JobFailed' ELSE '' END,
       CASE WHEN i %% 100 BETWEEN 95 AND 97 THEN 'The source is not readable media: error <n>' ELSE '' END,
       0, false
FROM (SELECT i, now() - (i * interval '30 days' / %(n)s) AS ts FROM generate_series(1, %(n)s) AS i) AS s
"""
FILL_ACTIVE = """
INSERT INTO offload_job (kind, status, progress, target_type, target_id, params, params_hash, attempts,
    max_attempts, error, result, requested_by_id, created_at, queued_at, started_at, finished_at, heartbeat_at,
    cancel_requested_at, cancelled_by_id, task_id, "then", idempotency_key, log_tail, traceback,
    failure_group, failure_exception, failure_message, priority, has_members)
SELECT (%(kinds)s::text[])[1 + i %% 5], CASE WHEN i %% 10 = 0 THEN 'running' ELSE 'queued' END,
       CASE WHEN i %% 10 = 0 THEN 40 END, 'media', i, '{}'::jsonb, 'active-' || i, 0, 3, NULL, NULL, %(user)s,
       now() - interval '1 minute', now() - interval '1 minute', CASE WHEN i %% 10 = 0 THEN now() END, NULL,
       CASE WHEN i %% 10 = 0 THEN now() END, NULL, NULL, '', '[]'::jsonb, '', '', '', '', '', '', 0, false
FROM generate_series(1, 300) AS i
"""
FILL_EVENTS = """
INSERT INTO offload_jobevent (seq, job_id, user_id, event, payload, created_at)
SELECT row_number() OVER (ORDER BY finished_at), id, requested_by_id, status, '{}'::jsonb, finished_at
FROM offload_job WHERE finished_at > now() - interval '1 day'
"""


def fill(n: int) -> None:
    """Empty the job tables, then write n finished jobs, 300 active ones, n / 10 items, the last day's events."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from offload.jobs import rollups
    from offload.models import EventSequence, Library, MediaItem

    common.truncate_queue_tables()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE offload_jobrollup, offload_queuesample, offload_rollupwatermark, offload_mediaitem CASCADE"
        )
    user, _ = User.objects.get_or_create(username="bench-staff", defaults={"is_staff": True, "is_superuser": True})
    # Other benchmarks on the same database make libraries of that name too: any one will do.
    library = Library.objects.filter(name="bench").order_by("pk").first() or Library.objects.create(
        name="bench", path=str(common.LIBRARY_ROOT), owner=user
    )
    items = max(1, n // 10)
    started = time.monotonic()
    with transaction.atomic():
        batch = 5000
        for first in range(0, items, batch):
            MediaItem.objects.bulk_create(
                MediaItem(library=library, relative_path=f"film-{i}.mkv", title=f"Film {i}", size=10**9)
                for i in range(first, min(items, first + batch))
            )
        with connection.cursor() as cursor:
            params = {"kinds": list(KINDS), "items": items, "user": user.pk, "n": n}
            cursor.execute(FILL_JOBS, params)
            cursor.execute(FILL_ACTIVE, params)
            cursor.execute(FILL_EVENTS)
            cursor.execute("SELECT coalesce(max(seq), 0) FROM offload_jobevent")
            (last,) = cursor.fetchone()
        EventSequence.objects.update_or_create(pk=1, defaults={"last_seq": last})
        library.recount_items()  # bulk_create sends no signals
    rollups.roll_up()
    with connection.cursor() as cursor:
        # What autovacuum does to a table in steady state: statistics, and the visibility map
        # that index-only scans need.
        cursor.execute("VACUUM ANALYZE offload_job")
        cursor.execute("ANALYZE")
    print(f"filled {n} jobs, {items} items in {time.monotonic() - started:.0f} s", flush=True)


def pages() -> dict[str, str]:
    from offload.models import Job, Library, MediaItem

    job = Job.objects.filter(status="failed").order_by("-id").first()
    item = MediaItem.objects.order_by("-id").first()
    library = Library.objects.filter(name="bench").order_by("pk").first()
    return {
        "dashboard": "/admin/operations/dashboard/",
        "failure groups": "/admin/operations/failures/",
        "admin job list": "/admin/offload/job/",
        "admin job list, failed": "/admin/offload/job/?status__exact=failed",
        "admin job list, one kind": "/admin/offload/job/?kind=media.transcode",
        "admin job page": f"/admin/offload/job/{job.pk}/change/",
        "admin media list": "/admin/offload/mediaitem/",
        "admin media page": f"/admin/offload/mediaitem/{item.pk}/change/",
        "admin library page": f"/admin/offload/library/{library.pk}/change/",
        "admin events list": "/admin/offload/jobevent/",
        "queues page": "/admin/operations/queues/",
        "GET /api/v1/jobs/": "/api/v1/jobs/",
        "GET /api/v1/jobs/?status=failed": "/api/v1/jobs/?status=failed",
        "GET /api/v1/jobs/?kind=media.transcode": "/api/v1/jobs/?kind=media.transcode",
        "GET /api/v1/media/": "/api/v1/media/",
        "GET /api/v1/libraries/": "/api/v1/libraries/",
        "GET /api/v1/queues/": "/api/v1/queues/",
    }


def time_pages(runs: int) -> dict[str, float]:
    """Median milliseconds of each page, caches cleared before every request."""
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user = User.objects.get(username="bench-staff")
    token, _ = Token.objects.get_or_create(user=user)
    client = Client()
    client.force_login(user)
    found = {}
    for name, url in pages().items():
        headers = {"HTTP_AUTHORIZATION": f"Token {token.key}"} if url.startswith("/api/") else {}
        timings = []
        for run in range(runs + 1):
            cache.clear()
            if not url.startswith("/api/"):
                client.force_login(user)  # the session lived in the cache just cleared
            started = time.perf_counter()
            response = client.get(url, **headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")
            if run:
                timings.append(elapsed)
        found[name] = statistics.median(timings)
        print(f"  {name:34s} {found[name]:8.1f} ms", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    common.configure_environment()
    common.install_signal_handlers()
    common.ensure_database()
    results: dict[int, dict[str, float]] = {}
    for n in args.sizes:
        fill(n)
        results[n] = time_pages(args.runs)
    first, last = args.sizes[0], args.sizes[-1]
    print(f"\n| page | {' | '.join(f'{n:,} jobs' for n in args.sizes)} | growth | aim at {last:,} |")
    print("|---|" + "---:|" * (len(args.sizes) + 1) + "---|")
    for name in results[first]:
        cells = " | ".join(f"{results[n][name]:.1f} ms" for n in args.sizes)
        # The aims: every API list under 50 ms, every console page under 200 ms.
        aim = 50 if "/api/" in name else 200
        verdict = f"under {aim} ms" if results[last][name] < aim else f"OVER {aim} ms"
        print(f"| {name} | {cells} | ×{results[last][name] / results[first][name]:.2f} | {verdict} |")


if __name__ == "__main__":
    main()
