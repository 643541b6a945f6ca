"""Every script in bench/ runs to the end with tiny sizes, so a schema or API change that breaks one fails here.

No figure is checked: the machines are shared and noisy. Each script runs as a developer runs
it, in its own process against its own database (its name says "bench"), Redis database and
ports, with sizes small enough to finish in seconds.
"""

import ast
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.imports import parsed

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

# The tiny run of each script. A new script without an entry here fails the test below.
SMOKE_ARGS: dict[str, list[str]] = {
    "accept_latency.py": ["--runs", "1", "--duration", "1", "--warmup", "1", "--items", "20", "--connections", "4"],
    "broker_compare.py": ["--jobs", "10", "--runs", "1", "--wait-jobs", "3", "--pace", "0.01", "--timeout", "60"],
    "cache.py": [
        "--runs",
        "1",
        "--duration",
        "1",
        "--latency-duration",
        "1",
        "--items",
        "5",
        "--calls",
        "50",
        "--connections",
        "4",
    ],
    "load_jobs.py": ["--requests", "24", "--clients", "4"],
    "notify_agents.py": ["--jobs", "5", "--rate", "50", "--slow", "5", "--probes", "5"],
    "notify_latency.py": [
        "--runs",
        "1",
        "--jobs",
        "5",
        "--rate",
        "50",
        "--timeout",
        "60",
        "--skip-idle",
        "--no-anatomy",
    ],
    "people_first.py": ["--backlog", "20", "--samples", "1"],
    "queue_throughput.py": ["--jobs", "20", "--runs", "1", "--timeout", "60"],
    "scale.py": ["--sizes", "300", "--runs", "1"],
    "search.py": ["--items", "50", "--runs", "1", "--searches", "5", "--edits", "3"],
    "transcode_overhead.py": ["--runs", "1", "--warmup", "0", "--cancels", "1", "--timeout", "120"],
    "web_tier.py": ["--runs", "1", "--duration", "1", "--items", "20", "--connections", "4"],
}


def runnable_scripts() -> list[str]:
    """The bench scripts a developer runs: those with a `__main__` block."""
    found = []
    for path in sorted(BENCH.glob("*.py")):
        tree = parsed(path)
        for node in tree.body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                found.append(path.name)
    return found


def free_port_pair() -> int:
    """A port whose next one is free too (the scripts use BENCH_PORT and BENCH_PORT + 1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two free ports in a row")


def test_every_bench_script_has_a_smoke_run():
    assert sorted(SMOKE_ARGS) == runnable_scripts()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", sorted(SMOKE_ARGS))
def test_bench_script_runs_to_the_end_with_tiny_sizes(script, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BENCH_")},
        "BENCH_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/offload_bench_smoke",
        "BENCH_REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        "BENCH_REDIS_KEY_PREFIX": "offload-bench-smoke",
        "BENCH_Q_NAME": "bench-smoke",
        "BENCH_PORT": str(free_port_pair()),
    }
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *SMOKE_ARGS[script]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{script} printed no figures"
