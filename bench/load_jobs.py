"""Load: N job-creating API requests from C concurrent clients, two workers; all jobs must finish consistently.

    .venv/bin/python bench/load_jobs.py                  # 2,000 requests from 50 clients
    .venv/bin/python bench/load_jobs.py --requests 400   # what tests/reliability/test_load.py runs

Runs on private servers of its own (a PostgreSQL cluster, a redis-server and a Typesense in a
temporary folder, as tests/reliability does), never on the machine's shared ones: uvicorn
(config.asgi, DATABASE_POOL_SIZE=4), one qcluster with OFFLOAD_Q_WORKERS workers, and the
search lane with one worker. Each client is one user with one keep-alive connection asking,
one request after the other, for a probe and an enrichment of each of its items (tiny clips).
Afterwards it checks what the test checks (every job succeeded once, the event log is whole,
every item probed and enriched, the queue empty, the index equal to the database) and prints
the figures for BENCHMARKS.md.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    folder = Path(tempfile.mkdtemp(prefix="offload-load-"))
    # This process reads through SQL and HTTP only; Django is set up for the test helpers' imports.
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="offload-load-bench-not-a-secret",
        PROMETHEUS_MULTIPROC_DIR=str(folder / "metrics"),
    )
    import django

    django.setup()

    from tests.support.reliability.load import assert_load_consistent, figures, prepare, run_load
    from tests.support.reliability.services import PrivatePostgres, PrivateRedis
    from tests.support.reliability.stack import new_stack, prepare_services
    from tests.support.services import TypesenseServer

    postgres = PrivatePostgres().init()
    postgres.start()
    redis = PrivateRedis(folder / "redis").start()
    typesense = TypesenseServer(folder / "typesense").start()
    stack = None
    try:
        services = prepare_services(postgres, redis, typesense, folder)
        stack = new_stack(services, folder / "stack")
        plans = prepare(stack, clients=args.clients, requests=args.requests)
        stack.web()
        stack.qcluster(OFFLOAD_Q_WORKERS=str(args.workers))
        stack.search_lane()
        load_before = os.getloadavg()[0]
        report = run_load(stack.web_url, plans)
        stack.wait_for_jobs_to_settle(1800)
        settled = time.time()
        stack.wait_until(
            lambda: stack.db.value("SELECT count(*) FROM search_pendingsync") == 0, 300, "the index outbox to drain"
        )
        drained = time.time()
        assert_load_consistent(stack, report)
        result = figures(stack, report)
        result["index_outbox_drained_after_last_job_seconds"] = round(max(0.0, drained - settled), 2)
        result["workers"] = args.workers
        result["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        result["nproc"] = os.cpu_count()
        print(json.dumps(result, indent=2))
        print("consistent: every job succeeded at its first attempt; event log, items, queue and index checked")
    finally:
        if stack is not None:
            stack.close()
        typesense.stop()
        redis.stop()
        postgres.destroy()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
