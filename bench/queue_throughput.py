"""Queue throughput: no-op jobs per second through the whole spine against bare django-q2 tasks.

Spine: N `system.noop` jobs queued with offload.jobs.enqueue (each with its own params, since an
identical active job would be deduplicated), then `manage.py qcluster` starts; timed from its
start until every job is `succeeded`. Bare: N `async_task("bench.noop.noop", broker=<one broker>)`,
the same cluster, timed until the cluster's OrmQ rows are gone (save_limit=-1 stores no
successes, so an acknowledged task leaves no row). Both run on the bench database, with the
app's Q_CLUSTER (2 workers, poll 0.05, save_limit -1) under the cluster name "bench".

Also printed: PostgreSQL transactions and row writes per job from pg_stat_database, and an
in-process anatomy of the round trips each step of one job makes.

    .venv/bin/python bench/queue_throughput.py [--jobs 2000] [--runs 3]
    .venv/bin/python bench/queue_throughput.py --anatomy-only --profile   # the worker's share under cProfile
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

NOOP = "bench.noop.noop"
COUNTERS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched")


@dataclass
class PhaseResult(common.Pass):
    """One timed pass of N tasks through a freshly started cluster."""

    label: str
    db: dict[str, float]  # pg_stat_database deltas per job, cluster side


def _scalar(sql: str, params: list[Any] | None = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchone()[0]


def db_counters() -> dict[str, int]:
    """This database's pg_stat_database counters, after letting finished backends flush theirs."""
    from django.db import connection

    # A backend flushes its statistics when it exits: close ours and give exiting ones a moment.
    connection.close()
    time.sleep(0.5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(f"SELECT {', '.join(COUNTERS)} FROM pg_stat_database WHERE datname = current_database()")
        return dict(zip(COUNTERS, cursor.fetchone(), strict=True))


def run_cluster(
    children: common.Children, label: str, jobs: int, remaining_sql: str, params: list, args: argparse.Namespace
) -> tuple[common.Timing, dict[str, float]]:
    """Start qcluster, poll until nothing remains, stop it: the timing, and pg_stat_database deltas per job."""
    before = db_counters()
    started = time.perf_counter()
    cluster = children.start(f"qcluster-{label}", [common.PYTHON, "manage.py", "qcluster"])
    timing = common.time_until_done(
        cluster,
        jobs,
        lambda: _scalar(remaining_sql, params),
        timeout=args.timeout,
        poll=args.poll,
        what=label,
        started=started,
    )
    children.stop(cluster)
    after = db_counters()
    deltas = {key: after[key] - before[key] for key in COUNTERS}
    # Our own polling queries were transactions too (one each, plus the snapshot read).
    deltas["xact_commit"] -= timing.polls + 2
    return timing, {key: value / jobs for key, value in deltas.items()}


def _phase_result(label: str, jobs: int, enqueue_seconds: float, measured: tuple) -> PhaseResult:
    timing, per_job = measured
    return PhaseResult(jobs=jobs, enqueue_rate=jobs / enqueue_seconds, **timing.figures(), label=label, db=per_job)


def spine_phase(children: common.Children, args: argparse.Namespace) -> PhaseResult:
    """N system.noop jobs through enqueue → qcluster → runner.execute → succeeded."""
    from offload.jobs import enqueue

    common.truncate_queue_tables()
    started = time.perf_counter()
    for i in range(args.jobs):
        enqueue("system.noop", params={"n": i})
    enqueue_seconds = time.perf_counter() - started
    measured = run_cluster(
        children, "spine", args.jobs, "SELECT count(*) FROM offload_job WHERE status <> 'succeeded'", [], args
    )
    return _phase_result("spine (system.noop jobs)", args.jobs, enqueue_seconds, measured)


def bare_phase(children: common.Children, args: argparse.Namespace) -> PhaseResult:
    """N bare async_task no-ops through the same cluster, with one shared broker."""
    from django.conf import settings
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    common.truncate_queue_tables()
    broker = get_broker()
    started = time.perf_counter()
    for _ in range(args.jobs):
        async_task(NOOP, broker=broker)
    enqueue_seconds = time.perf_counter() - started
    key = settings.Q_CLUSTER["name"]
    measured = run_cluster(
        children, "bare", args.jobs, "SELECT count(*) FROM django_q_ormq WHERE key = %s", [key], args
    )
    return _phase_result("bare django-q2 async_task", args.jobs, enqueue_seconds, measured)


# --- Where the spine's time goes -------------------------------------------------------


def anatomy(profile: bool = False) -> None:
    """Round trips of every step one job and one bare task make, then their cost in one process."""
    from django.db import close_old_connections
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    from bench.noop import noop
    from offload.jobs import enqueue, runner
    from offload.jobs.lanes import shared_broker

    common.truncate_queue_tables()
    broker = shared_broker()
    print("\nround trips to PostgreSQL per job, step by step (in-process, one connection):")
    with common.trace_sql() as trace:
        job, _ = enqueue("system.noop", params={"anatomy": True})
    print("  spine enqueue (web process):")
    print(common.format_trace(trace))
    with common.trace_sql() as trace:
        async_task(NOOP, broker=broker)
    print("  bare async_task (web process):")
    print(common.format_trace(trace))
    with common.trace_sql() as trace:
        ((ack_id, _payload),) = broker.dequeue()
    print("  broker.dequeue (cluster pusher; the same for both):")
    print(common.format_trace(trace))
    with common.trace_sql() as trace:
        # The worker closes old connections before each task; with health checks on, that is a SELECT 1.
        close_old_connections()
        runner.execute(job.pk)
    print("  runner.execute (cluster worker: claim, no-op handler, succeed):")
    print(common.format_trace(trace))
    with common.trace_sql() as trace:
        broker.acknowledge(ack_id)
    print("  broker.acknowledge (cluster monitor; the same for both):")
    print(common.format_trace(trace))

    # The same steps, timed over many jobs: milliseconds of one process's wall time per job.
    common.truncate_queue_tables()
    n = 300
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[int], Any]) -> list:
        started = time.perf_counter()
        out = [fn(i) for i in range(n)]
        timings[name] = (time.perf_counter() - started) * 1000 / n
        return out

    jobs = timed("spine enqueue", lambda i: enqueue("system.noop", params={"timed": i})[0])
    tasks = timed("dequeue", lambda i: broker.dequeue()[0])
    timed("spine execute", lambda i: (close_old_connections(), runner.execute(jobs[i].pk)))
    timed("acknowledge", lambda i: broker.acknowledge(tasks[i][0]))
    bare_broker = get_broker()
    timed("bare async_task", lambda i: async_task(NOOP, broker=bare_broker))
    timed("bare execute", lambda i: (close_old_connections(), noop()))
    common.truncate_queue_tables()
    print(f"\nmilliseconds per job in one process ({n} jobs, no contention):")
    for name, ms in timings.items():
        print(f"  {name:<16} {ms:6.2f} ms")
    if profile:
        common.truncate_queue_tables()
        profiled = [enqueue("system.noop", params={"profiled": i})[0] for i in range(n)]
        common.print_profile(
            f"runner.execute ({n} jobs)",
            lambda: [(close_old_connections(), runner.execute(job.pk)) for job in profiled],
            lines=45,
        )
        common.truncate_queue_tables()
    worker_ms = timings["spine execute"]
    print(
        f"  => a worker's spine work alone caps 2 workers at about {2000 / worker_ms:.0f} jobs/s; "
        f"the pusher's dequeue caps any cluster at about {1000 / timings['dequeue']:.0f} tasks/s"
    )


# --- Main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every option has a default that reproduces BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds one phase may take")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between completion checks")
    parser.add_argument("--no-anatomy", action="store_true", help="skip the in-process breakdown")
    parser.add_argument("--anatomy-only", action="store_true", help="only the in-process breakdown, no cluster")
    parser.add_argument("--profile", action="store_true", help="add runner.execute's cProfile to the breakdown")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Alternate spine and bare phases --runs times; print each, the medians, the ratio, the anatomy."""
    args = parse_args(argv)
    began = time.perf_counter()
    common.configure_environment()
    common.install_signal_handlers()
    common.ensure_database()

    print(f"queue throughput ({time.strftime('%Y-%m-%d %H:%M')}):")
    common.print_summary(common.machine_summary())
    if args.anatomy_only:
        anatomy(args.profile)
        return 0
    print(f"  load                {args.jobs} no-op tasks per phase, {args.runs} runs, cluster started per phase")
    results: dict[str, list[PhaseResult]] = {"spine": [], "bare": []}
    header = (
        "run  phase                        enqueue/s   wall s  jobs/s   steady jobs/s"
        "   xacts/job  ins/job  upd/job  del/job  cpu ms/job: cluster  postgres"
    )
    with common.Children() as children:
        print(f"\nload average before the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(header)
        for run in range(1, args.runs + 1):
            for key, phase in (("spine", spine_phase), ("bare", bare_phase)):
                result = phase(children, args)
                results[key].append(result)
                db = result.db
                print(
                    f"{run:<4} {result.label:<28} {result.enqueue_rate:>9.0f} {result.wall_seconds:>8.2f} "
                    f"{result.wall_rate:>7.0f} {result.steady_rate:>15.0f} {db['xact_commit']:>11.1f} "
                    f"{db['tup_inserted']:>8.2f} {db['tup_updated']:>8.2f} {db['tup_deleted']:>8.2f} "
                    f"{result.cluster_cpu_ms:>20.2f} {result.postgres_cpu_ms:>9.2f}"
                )
        common.truncate_queue_tables()

    print(f"\nmedian of {args.runs} runs:")
    medians = {}
    for key, runs in results.items():
        m = common.pass_medians(runs)
        xacts = common.median([r.db["xact_commit"] for r in runs])
        medians[key] = (m["wall"], m["steady"])
        print(
            f"  {runs[0].label:<28} {m['wall']:>6.0f} jobs/s from cluster start, {m['steady']:>6.0f} jobs/s steady; "
            f"enqueue {m['enqueue']:>5.0f}/s; per job in the cluster: {xacts:.1f} transactions, "
            f"CPU (steady) {m['cluster_cpu']:.2f} ms in qcluster + {m['postgres_cpu']:.2f} ms in PostgreSQL"
        )
    (s_wall, s_steady), (b_wall, b_steady) = medians["spine"], medians["bare"]
    print(
        f"  ratio spine/bare: {s_wall / b_wall:.0%} from cluster start, {s_steady / b_steady:.0%} steady "
        f"(aim: at least 60%)"
    )
    if not args.no_anatomy:
        anatomy(args.profile)
    print(f"\nfinished in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
