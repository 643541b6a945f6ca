"""Brokers compared: no-op jobs through the whole spine on django-q2's ORM broker and on its Redis broker.

Each phase, for one broker (OFFLOAD_Q_BROKER=orm or redis, in every process of the phase):

1. Throughput: a child process enqueues N `system.noop` jobs with offload.jobs.enqueue (each with
   its own params: identical active jobs are deduplicated), then `manage.py qcluster` (2 workers)
   starts; timed from its start until every job is `succeeded`, and in the steady window from
   10 % done to all done.
   CPU per job in that window: of the qcluster's processes and of its PostgreSQL backends (Redis'
   own CPU is not counted: the server is shared).
2. Queue wait: with that cluster still running, a child enqueues M more jobs, one every
   --pace seconds; per job, the time from enqueue (created_at) to claim (started_at).

Runs alternate ORM and Redis phases, --runs times. Same bench database, Redis database, cluster
name and settings as bench/queue_throughput.py (see bench/README.md).

    .venv/bin/python bench/broker_compare.py [--jobs 2000] [--runs 3] [--wait-jobs 100]
"""

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

BROKERS = ("orm", "redis")


@dataclass
class PhaseResult(common.Pass):
    """One broker's pass: throughput of N jobs from a cold cluster, then queue waits of paced jobs."""

    broker: str
    wait_ms: list[float]


def enqueue_jobs(count: int, tag: str, pace: float) -> None:
    """Child process: queue `count` system.noop jobs through the spine, print jobs/s."""
    common.configure_environment()
    import django

    django.setup()
    from offload.jobs import enqueue

    started = time.perf_counter()
    for n in range(count):
        enqueue("system.noop", params={"tag": tag, "n": n})
        if pace:
            time.sleep(pace)
    print(f"{count / (time.perf_counter() - started):.1f}")


def run_enqueuer(broker: str, count: int, tag: str, pace: float = 0.0) -> float:
    """Enqueue in a child whose settings use this broker (django-q2 reads its broker once, at import)."""
    done = subprocess.run(
        [common.PYTHON, __file__, "--enqueue", str(count), "--tag", tag, "--pace", str(pace)],
        cwd=common.ROOT,
        env={**os.environ, "OFFLOAD_Q_BROKER": broker},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def _left(tag: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM offload_job WHERE params->>'tag' = %s AND status <> 'succeeded'", [tag])
        return cursor.fetchone()[0]


def _wait_until_done(tag: str, jobs: int, cluster: subprocess.Popen, timeout: float) -> common.Timing:
    """Poll until the tagged jobs all succeeded."""
    return common.time_until_done(cluster, jobs, lambda: _left(tag), timeout=timeout, poll=0.02, what=tag)


def queue_waits(tag: str) -> list[float]:
    """Milliseconds from enqueue to claim of each tagged job."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXTRACT(EPOCH FROM started_at - created_at) * 1000 FROM offload_job WHERE params->>'tag' = %s",
            [tag],
        )
        return [float(row[0]) for row in cursor.fetchall()]


def clear_redis_queue() -> None:
    """Drop what an earlier, interrupted Redis phase may have left in the bench cluster's list."""
    import redis
    from django.conf import settings

    redis.from_url(common.REDIS_URL).delete(f"django_q:{settings.Q_CLUSTER['name']}:q")


def phase(children: common.Children, broker: str, run: int, args: argparse.Namespace) -> PhaseResult:
    common.truncate_queue_tables()
    clear_redis_queue()
    tag = f"{broker}-{run}"
    enqueue_rate = run_enqueuer(broker, args.jobs, tag)
    cluster = children.start(
        f"qcluster-{broker}", [common.PYTHON, "manage.py", "qcluster"], env={"OFFLOAD_Q_BROKER": broker}
    )
    try:
        timing = _wait_until_done(tag, args.jobs, cluster, args.timeout)
        wait_tag = f"{tag}-wait"
        run_enqueuer(broker, args.wait_jobs, wait_tag, pace=args.pace)
        _wait_until_done(wait_tag, args.wait_jobs, cluster, args.timeout)
        waits = queue_waits(wait_tag)
    finally:
        children.stop(cluster)
    return PhaseResult(jobs=args.jobs, enqueue_rate=enqueue_rate, **timing.figures(), broker=broker, wait_ms=waits)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; the defaults reproduce BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per throughput phase")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wait-jobs", type=int, default=100, help="paced jobs per queue-wait phase")
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between paced jobs")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one phase may take")
    parser.add_argument("--enqueue", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Alternate ORM and Redis phases --runs times; print each, then the medians and the ratio."""
    args = parse_args(argv)
    if args.enqueue is not None:
        enqueue_jobs(args.enqueue, args.tag, args.pace)
        return 0
    began = time.perf_counter()
    common.set_up("broker_compare")

    print(f"brokers compared ({time.strftime('%Y-%m-%d %H:%M')}):")
    common.print_summary(common.machine_summary())
    print(
        f"  load                {args.jobs} no-op jobs per throughput phase, then {args.wait_jobs} paced "
        f"{args.pace:g} s apart; {args.runs} runs; cluster started per phase"
    )
    print(f"\nload average before the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "run  broker  enqueue/s   wall s  jobs/s   steady jobs/s   cpu ms/job: cluster  postgres"
        "   queue wait p50 / p99 ms"
    )
    results: dict[str, list[PhaseResult]] = {broker: [] for broker in BROKERS}
    with common.Children() as children:
        for run in range(1, args.runs + 1):
            for broker in BROKERS:
                result = phase(children, broker, run, args)
                results[broker].append(result)
                print(
                    f"{run:<4} {broker:<7} {result.enqueue_rate:>8.0f} {result.wall_seconds:>8.2f} "
                    f"{result.wall_rate:>7.0f} {result.steady_rate:>15.0f} "
                    f"{result.cluster_cpu_ms:>20.2f} {result.postgres_cpu_ms:>9.2f} "
                    f"{common.percentile(result.wait_ms, 50):>14.1f} / {common.percentile(result.wait_ms, 99):.1f}"
                )
        common.truncate_queue_tables()

    print(f"\nmedian of {args.runs} runs:")
    medians = {}
    for broker, runs in results.items():
        m = common.pass_medians(runs)
        p50 = common.median([common.percentile(r.wait_ms, 50) for r in runs])
        p99 = common.median([common.percentile(r.wait_ms, 99) for r in runs])
        medians[broker] = (m["wall"], m["steady"])
        print(
            f"  {broker:<6} {m['wall']:>5.0f} jobs/s from cluster start, {m['steady']:>5.0f} jobs/s steady; "
            f"enqueue {m['enqueue']:>4.0f}/s; CPU per job {m['cluster_cpu']:.2f} ms in qcluster + "
            f"{m['postgres_cpu']:.2f} ms in PostgreSQL; queue wait p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
    (o_wall, o_steady), (r_wall, r_steady) = medians["orm"], medians["redis"]
    print(f"  redis/orm: {r_wall / o_wall:.2f}x from cluster start, {r_steady / o_steady:.2f}x steady")
    print(f"\nfinished in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
