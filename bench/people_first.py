"""People before backlogs: when does a probe asked for through the API start, behind 2,000 scan-queued probes?

    .venv/bin/python bench/people_first.py                 # 2,000 queued probes, 3 API probes
    .venv/bin/python bench/people_first.py --backlog 500

Runs on private servers of its own (a PostgreSQL cluster and a redis-server in a temporary
folder, as bench/load_jobs.py does): uvicorn and one default-lane qcluster with 2 workers.
It queues `--backlog` probes of tiny clips the way a scan does (pipeline stages, each followed
by its thumbnail and enrichment), starts the workers, lets the backlog flow for a while, and
then asks for a probe of another item through the API, `--samples` times. For each it prints
how long after the request the probe started (database clocks, `started_at - created_at`),
how many jobs started in between, the backlog then waiting, and a probe's median run time.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SEED = """
from django.contrib.auth.models import User
from offload import jobs
from offload.handlers.scan import PIPELINE_AFTER_PROBE
from offload.models import Library, MediaItem
owner = User.objects.get(username={user!r})
library = Library.objects.create(name="backlog", path={path!r}, owner=owner)
made = [MediaItem(library=library, relative_path=f"clip{{n:04d}}.mp4") for n in range({count})]
items = MediaItem.objects.bulk_create(made)
for item in items[: {backlog}]:
    jobs.enqueue("media.probe", target=item, user=owner, then=PIPELINE_AFTER_PROBE)
print("ITEMS", *[item.pk for item in items[{backlog}:]])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    folder = Path(tempfile.mkdtemp(prefix="offload-people-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="offload-people-bench-not-a-secret",
        PROMETHEUS_MULTIPROC_DIR=str(folder / "metrics"),
    )
    import django

    django.setup()

    from tests.support.reliability.seed import load_username
    from tests.support.reliability.services import PrivatePostgres, PrivateRedis
    from tests.support.reliability.stack import new_stack, prepare_services
    from tests.support.services import TypesenseServer

    postgres = PrivatePostgres().init()
    postgres.start()
    redis = PrivateRedis(folder / "redis").start()
    typesense = TypesenseServer(folder / "typesense")  # never started: search is not measured here
    stack = None
    try:
        services = prepare_services(postgres, redis, typesense, folder)
        stack = new_stack(services, folder / "stack")
        user = load_username(1)
        count = args.backlog + args.samples
        media = stack.media_folder("backlog", {f"clip{n:04d}.mp4": "short" for n in range(count)})
        out = stack.shell(SEED.format(user=user, path=str(media), count=count, backlog=args.backlog))
        asked_for = [int(pk) for pk in out.split("ITEMS", 1)[1].split()]
        stack.web()
        stack.qcluster(OFFLOAD_LANE_DEFAULT_WORKERS=str(args.workers))
        client = stack.api(user)
        done = "SELECT count(*) FROM offload_job WHERE kind = 'media.probe' AND status = 'succeeded'"
        samples = []
        # Let the backlog flow first (100 probes before each ask, fewer for a small backlog): the
        # workers are busy with it when the person asks.
        step = max(1, min(100, args.backlog // (len(asked_for) + 1)))
        for n, item in enumerate(asked_for):
            stack.wait_until(lambda n=n: stack.db.value(done) >= step * (n + 1), 600, "the backlog to flow")
            waiting = stack.db.value("SELECT count(*) FROM offload_job WHERE status = 'queued'")
            job = client.create_job(f"/api/v1/media/{item}/probe/")
            stack.wait_until(
                lambda job=job: stack.db.value("SELECT started_at FROM offload_job WHERE id = %s", [job["id"]]),
                600,
                "the asked-for probe to start",
            )
            created, started = stack.db.rows(
                "SELECT created_at, started_at FROM offload_job WHERE id = %s", [job["id"]]
            )[0]
            between = stack.db.value(
                "SELECT count(*) FROM offload_job WHERE id <> %s AND started_at > %s AND started_at < %s",
                [job["id"], created, started],
            )
            samples.append(
                {
                    "start_ms": round((started - created).total_seconds() * 1000, 1),
                    "jobs_started_before_it": between,
                    "queued_when_asked": waiting,
                }
            )
        runs = stack.db.rows(
            "SELECT extract(epoch FROM finished_at - started_at) FROM offload_job"
            " WHERE kind = 'media.probe' AND status = 'succeeded'"
        )
        result = {
            "backlog": args.backlog,
            "workers": args.workers,
            "samples": samples,
            "median_start_ms": statistics.median(s["start_ms"] for s in samples),
            "median_probe_run_ms": round(statistics.median(float(r[0]) for r in runs) * 1000, 1),
            "nproc": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result, indent=2))
    finally:
        if stack is not None:
            stack.close()
        redis.stop()
        postgres.destroy()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
