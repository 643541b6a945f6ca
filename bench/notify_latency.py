"""Websocket notifications: commit-to-client latency, and how many idle sockets one ASGI process holds.

1. Latency. One uvicorn worker and one qcluster (2 workers) serve the bench database; one
   websocket client (python `websockets`) is authenticated as a staff user, who owns the jobs
   (`system.noop` is internal: only staff see it). A separate process enqueues N jobs with
   offload.jobs.enqueue, either all at once (burst) or at a steady rate (paced), so the client's
   process does nothing but listen. For each job's "succeeded" message:
       latency = time the client received it - the job's `finished_at`
   `finished_at` is taken in the worker just before the UPDATE, the event INSERT and the COMMIT
   of the same transaction, so the figure includes those statements and the commit as well as
   the publish after it, Redis, the ASGI process and the websocket frame. The same machine clock
   stamps both ends. A channel-layer listener in a thread of this process (a second member of
   the staff group) splits the figure: up to the channel layer, and the ASGI process's share.
   An in-process breakdown follows: the same jobs run by runner.execute in this process, with
   the commit, the API-cache bump and the publish stamped, and their Redis round trips counted.
2. Idle connections. One uvicorn process (no --workers) and this process opening websocket
   connections in steps (1,000, 2,000, 5,000, 10,000 by default), each authenticated (auth
   message → "hello") as one user whose connection cap and connect rate are raised through the
   server's environment. After each step the server's RSS is read with psutil; the figures are
   KB per connection over a warmed-up baseline, the connect rate, and whether every socket is
   still open after holding them past one 20 s server heartbeat. This process raises its own
   open-file limit to the hard limit, and the server inherits it. Then every socket is aborted
   at once, and once the server has settled the script reports what its disconnect handlers
   left in Redis (channel-group members, counted connections) and the errors it logged.

Takes about 9 minutes with the defaults (the idle part about 2 minutes a run).

    .venv/bin/python bench/notify_latency.py [--jobs 500] [--runs 3] [--rate 20] [--steps 1000,2000,5000,10000]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

IDLE_USER = "bench-idle"
STAFF_USER = "bench-notify"


def _epoch(iso: str) -> float:
    """Epoch seconds from the API's ISO 8601 time ("…Z")."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# --- 1. Latency ---------------------------------------------------------------------------------


@dataclass
class LatencyRun:
    """One run of N jobs: seconds from finished_at to the client's receipt, per job."""

    mode: str
    jobs: int
    latencies: list[float]
    end_to_end: list[float]  # created_at → received
    seconds: float  # first enqueue → last succeeded received
    to_layer: list[float]  # finished_at → a channel-layer listener in this process has it
    layer_to_ws: list[float]  # that listener → the websocket client (the ASGI process's share)

    def pct(self, p: float) -> float:
        return common.percentile(self.latencies, p) * 1000


def enqueue_jobs(n: int, rate: float, owner_id: int, tag: str) -> None:
    """Run in a separate process: enqueue n system.noop jobs for the owner, all at once or `rate` a second."""
    common.configure_environment()
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from offload.jobs import enqueue
    from tests.support.publisher import flush_publisher

    owner = get_user_model().objects.get(pk=owner_id)
    started = time.monotonic()
    for i in range(n):
        if rate > 0:
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        enqueue("system.noop", params={"bench": tag, "n": i}, user=owner)
    flush_publisher()


class LayerProbe:
    """A channel-layer member of the staff group in a thread of its own: when each event reaches Redis' far side.

    It receives what the ASGI process receives, straight from the channel layer, so the gap
    between its time and the websocket client's is the ASGI process's share (consumer, frame).
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.received: dict[int, float] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-layer-probe", daemon=True)

    def __enter__(self) -> "LayerProbe":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the channel-layer probe did not start: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._listen())
        except BaseException as exc:
            self._error = exc

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        from offload.notifications.publisher import STAFF_GROUP

        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(STAFF_GROUP, channel)
        self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    message = await asyncio.wait_for(layer.receive(channel), 0.5)
                except TimeoutError:
                    continue
                at = time.time()
                job = message.get("job") or {}
                if message.get("event") == "succeeded" and (job.get("params") or {}).get("bench") == self.tag:
                    self.received[job["id"]] = at
        finally:
            await layer.group_discard(STAFF_GROUP, channel)


async def _listen(ws_url: str, origin: str, token: str, n: int, tag: str, start_enqueuer: Any, timeout: float) -> dict:
    """Authenticate, start the enqueuer, and record when each of our jobs' "succeeded" arrives."""
    received: dict[int, tuple[float, dict]] = {}
    async with common.authenticated_websocket(ws_url, origin, token) as ws:
        began = time.time()
        start_enqueuer()
        deadline = time.monotonic() + timeout
        while len(received) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"only {len(received)} of {n} 'succeeded' messages within {timeout:g} s")
            raw = await asyncio.wait_for(ws.recv(), remaining)
            # Stamped before parsing: the parse is the client's cost, not the server's.
            at = time.time()
            message = json.loads(raw)
            job = message.get("job") or {}
            if message.get("event") == "succeeded" and (job.get("params") or {}).get("bench") == tag:
                received[job["id"]] = (at, job)
    return {"began": began, "received": received}


def latency_run(mode: str, args: argparse.Namespace, base: str, token: str, owner_id: int) -> LatencyRun:
    """One run: fresh tables, a listening client, N jobs from a separate process."""
    common.truncate_queue_tables()
    tag = f"{mode}-{time.time_ns()}"
    rate = args.rate if mode == "paced" else 0.0
    # spawn, not fork: the child sets Django up afresh instead of sharing this process's connections.
    proc = multiprocessing.get_context("spawn").Process(
        target=enqueue_jobs, args=(args.jobs, rate, owner_id, tag), daemon=True
    )
    try:
        ws_url = base.replace("http://", "ws://") + "/ws/events/"
        with LayerProbe(tag) as probe:
            out = asyncio.run(_listen(ws_url, base, token, args.jobs, tag, proc.start, args.timeout))
            # The probe hears the same events no later than the websocket does; give a straggler a moment.
            time.sleep(0.2)
        proc.join(30)
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    if proc.exitcode != 0:
        raise RuntimeError(f"the enqueuing process exited with {proc.exitcode}")
    rows = out["received"]
    latencies = [at - _epoch(job["finished_at"]) for at, job in rows.values()]
    end_to_end = [at - _epoch(job["created_at"]) for at, job in rows.values()]
    to_layer = [
        probe.received[pk] - _epoch(job["finished_at"]) for pk, (_at, job) in rows.items() if pk in probe.received
    ]
    layer_to_ws = [at - probe.received[pk] for pk, (at, _job) in rows.items() if pk in probe.received]
    seconds = max(at for at, _ in rows.values()) - out["began"]
    return LatencyRun(mode, len(latencies), latencies, end_to_end, seconds, to_layer, layer_to_ws)


def anatomy(owner_id: int, jobs: int = 200, gap: float = 0.02) -> None:
    """Where the time from finished_at to the channel layer goes, in this process with no other load.

    Runs `system.noop` jobs with runner.execute here (as a worker would), `gap` seconds apart, and
    stamps the steps by wrapping, for the measurement only, the connection's commit, the API-cache
    bump and the publish that follow it; a LayerProbe hears the event. Redis commands are counted
    per job by wrapping redis-py's sync and asyncio execute_command (a pipeline counts as one).
    """
    import redis
    import redis.asyncio
    from django.contrib.auth import get_user_model
    from django.db import connection

    from offload.api import caching
    from offload.jobs import enqueue, runner
    from offload.notifications import publisher
    from tests.support.publisher import flush_publisher

    owner = get_user_model().objects.get(pk=owner_id)
    common.truncate_queue_tables()
    stamps: dict[str, list[float]] = {"commit": [], "bump": [], "publish": []}
    counts: Counter = Counter()
    real = {
        "commit": connection.commit,
        "bump": caching.bump,
        "publish": publisher.publish_job_event,
        "sync": redis.Redis.execute_command,
        "async": redis.asyncio.Redis.execute_command,
        "sync pipe": redis.client.Pipeline.execute,
        "async pipe": redis.asyncio.client.Pipeline.execute,
    }

    def commit() -> None:
        real["commit"]()
        stamps["commit"].append(time.time())

    def bump(namespace: str, audiences: Any) -> None:
        real["bump"](namespace, audiences)
        stamps["bump"].append(time.time())

    def publish(*a: Any, **kw: Any) -> None:
        real["publish"](*a, **kw)
        stamps["publish"].append(time.time())

    def sync_command(self: Any, *a: Any, **kw: Any) -> Any:
        counts["sync"] += 1
        return real["sync"](self, *a, **kw)

    # The probe's own receives run on asyncio too: count the publisher thread's commands only.
    def publisher_thread() -> bool:
        return threading.current_thread().name == "offload-publisher"

    async def async_command(self: Any, *a: Any, **kw: Any) -> Any:
        counts["async"] += publisher_thread()
        return await real["async"](self, *a, **kw)

    def sync_pipe(self: Any, *a: Any, **kw: Any) -> Any:
        counts["sync"] += 1
        return real["sync pipe"](self, *a, **kw)

    async def async_pipe(self: Any, *a: Any, **kw: Any) -> Any:
        counts["async"] += publisher_thread()
        return await real["async pipe"](self, *a, **kw)

    tag = f"anatomy-{time.time_ns()}"
    rows: list[dict[str, float]] = []
    connection.commit, caching.bump, publisher.publish_job_event = commit, bump, publish
    redis.Redis.execute_command, redis.asyncio.Redis.execute_command = sync_command, async_command
    redis.client.Pipeline.execute, redis.asyncio.client.Pipeline.execute = sync_pipe, async_pipe
    try:
        with LayerProbe(tag) as probe:
            # Warm: the publisher thread, the channel layer's pools.
            runner.execute(enqueue("system.noop", params={"bench": "warm"}, user=owner)[0].pk)
            flush_publisher()
            time.sleep(0.2)
            for i in range(jobs):
                job, _ = enqueue("system.noop", params={"bench": tag, "n": i}, user=owner)
                flush_publisher()
                for stamped in stamps.values():
                    stamped.clear()
                before = counts.copy()
                runner.execute(job.pk)
                flush_publisher()
                time.sleep(gap)
                job.refresh_from_db(fields=["finished_at"])
                finished = job.finished_at.timestamp()
                # The claim commits, bumps and publishes too, before finished_at: take the finish's.
                after = {name: [t for t in stamped if t >= finished] for name, stamped in stamps.items()}
                if job.pk in probe.received and all(after.values()):
                    commit, bumped, published = after["commit"][0], after["bump"][0], after["publish"][0]
                    rows.append(
                        {
                            "finished_at → COMMIT returns": commit - finished,
                            "→ API cache bump done": bumped - commit,
                            "→ publish submitted": published - bumped,
                            "→ channel layer (probe)": probe.received[job.pk] - published,
                            "finished_at → channel layer": probe.received[job.pk] - finished,
                            "redis round trips, worker thread": counts["sync"] - before["sync"],
                            "redis round trips, publisher": counts["async"] - before["async"],
                        }
                    )
    finally:
        del connection.commit
        caching.bump, publisher.publish_job_event = real["bump"], real["publish"]
        redis.Redis.execute_command, redis.asyncio.Redis.execute_command = real["sync"], real["async"]
        redis.client.Pipeline.execute, redis.asyncio.client.Pipeline.execute = real["sync pipe"], real["async pipe"]
        common.truncate_queue_tables()
    print(f"\nfrom finished_at to the channel layer, in this process, {len(rows)} jobs {gap * 1000:.0f} ms apart:")
    for name in rows[0] if rows else ():
        values = [r[name] for r in rows]
        if name.startswith("redis"):
            print(f"  {name:<32} {common.median(values):6.0f} per job (claim and finish: two events)")
        else:
            print(f"  {name:<32} p50 {_ms(values, 50):6.2f} ms   p99 {_ms(values, 99):6.2f} ms")


def latency_part(children: common.Children, args: argparse.Namespace) -> dict[str, list[LatencyRun]]:
    """Start the server and the cluster, then measure each mode --runs times, alternating."""
    user, token = common.user_with_token(STAFF_USER, staff=True)
    port = common.BASE_PORT
    base = f"http://127.0.0.1:{port}"
    web = common.start_uvicorn(children, "uvicorn-notify", port)
    common.start_qcluster(children, "qcluster-notify")
    common.wait_for_http(f"{base}/healthz/live", web)
    modes = [m for m in ("burst", "paced") if m in args.modes]
    results: dict[str, list[LatencyRun]] = {m: [] for m in modes}
    # Warm the worker processes, the publisher threads and the consumer's code paths.
    warm = argparse.Namespace(**{**vars(args), "jobs": 20})
    latency_run("burst", warm, base, token, user.pk)
    print(f"\nlatency: {args.jobs} jobs per run; paced at {args.rate:g} jobs/s; load average {_load()}")
    print(
        "run  mode    jobs  seconds   p50 ms   p90 ms   p99 ms   max ms   "
        "to layer p50/p99 ms   layer→ws p50/p99 ms   created→received p50 ms"
    )
    for run in range(1, args.runs + 1):
        for mode in modes:
            result = latency_run(mode, args, base, token, user.pk)
            results[mode].append(result)
            print(
                f"{run:<4} {mode:<6} {result.jobs:>5} {result.seconds:>8.1f} {result.pct(50):>8.1f} "
                f"{result.pct(90):>8.1f} {result.pct(99):>8.1f} {result.pct(100):>8.1f} "
                f"{_ms(result.to_layer, 50):>11.1f} /{_ms(result.to_layer, 99):>6.1f} "
                f"{_ms(result.layer_to_ws, 50):>13.1f} /{_ms(result.layer_to_ws, 99):>6.1f} "
                f"{_ms(result.end_to_end, 50):>25.1f}"
            )
    common.truncate_queue_tables()
    print(f"load average after: {_load()}")
    return results


# --- 2. Idle connections ----------------------------------------------------------------------------


@dataclass
class Step:
    """The server after holding `open` authenticated sockets."""

    target: int
    open: int
    rss: int
    seconds: float  # to open this step's new sockets
    new: int
    server_cpu: float  # share of one core the server used while opening them
    client_cpu: float  # the same for this process


@dataclass
class IdleRun:
    """One fresh server taken through the steps."""

    baseline_rss: int
    steps: list[Step] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    held_after: int | None = None  # sockets still open after the hold
    hold_rss: int | None = None
    nofile: int = 0
    leftovers: dict[str, int] = field(default_factory=dict)  # Redis entries left after a mass disconnect
    drain_seconds: float = 0.0  # how long the server was busy with the disconnects
    settled: bool = False
    errors: Counter = field(default_factory=Counter)  # the server log's error lines

    @property
    def max_open(self) -> int:
        return max((s.open for s in self.steps), default=0)

    def kb_per_connection(self, step: Step) -> float:
        return (step.rss - self.baseline_rss) / step.open / 1024 if step.open else float("nan")


async def _open_one(url: str, origin: str, token: str, sockets: list, failures: Counter) -> None:
    from websockets.asyncio.client import connect

    try:
        # The server pings every 20 s; the client does not ping, so the sockets stay idle.
        ws = await connect(url, origin=origin, open_timeout=60, ping_interval=None, close_timeout=1, max_queue=4)
    except Exception as exc:
        failures[f"connect: {type(exc).__name__}"] += 1
        return
    try:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
    except Exception as exc:
        # A close frame says why (4401: the server's auth deadline passed; 4429: too many).
        code = getattr(getattr(exc, "rcvd", None), "code", None)
        failures[f"auth: {type(exc).__name__}" + (f" {code}" if code else "")] += 1
        ws.transport.abort()
        return
    if hello.get("type") != "hello":
        failures[f"auth answered {hello.get('type')}"] += 1
        ws.transport.abort()
        return
    sockets.append(ws)


async def _open_many(url: str, origin: str, token: str, count: int, concurrency: int, sockets: list, failures: Counter):
    """Open `count` more authenticated sockets, at most `concurrency` handshakes at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await _open_one(url, origin, token, sockets, failures)

    await asyncio.gather(*(one() for _ in range(count)))


def _still_open(sockets: list) -> int:
    from websockets.protocol import State

    return sum(1 for ws in sockets if ws.state is State.OPEN)


async def _idle_steps(server_pid: int, url: str, origin: str, token: str, args: argparse.Namespace) -> IdleRun:
    import psutil

    server, me = psutil.Process(server_pid), psutil.Process()
    sockets: list = []
    failures: Counter = Counter()
    # Warm up: the first connections import and build what every later one reuses.
    await _open_many(url, origin, token, 20, 20, sockets, failures)
    if len(sockets) < 20:
        raise RuntimeError(f"warm-up connections failed: {dict(failures)}")
    await asyncio.gather(*(ws.close() for ws in sockets))
    sockets.clear()
    await asyncio.sleep(2)
    run = IdleRun(baseline_rss=server.memory_info().rss, nofile=server.rlimit(psutil.RLIMIT_NOFILE)[0])
    began = time.monotonic()
    try:
        for target in args.steps:
            if time.monotonic() - began > args.idle_budget:
                print(f"  stopping before {target}: the {args.idle_budget:g} s budget is spent")
                break
            before, started = len(sockets), time.perf_counter()
            cpu_before = (_cpu(server), _cpu(me))
            await _open_many(url, origin, token, target - len(sockets), args.concurrency, sockets, failures)
            seconds = time.perf_counter() - started
            server_cpu, client_cpu = ((_cpu(p) - b) / seconds for p, b in zip((server, me), cpu_before, strict=True))
            await asyncio.sleep(args.settle)
            open_now = _still_open(sockets)
            step = Step(
                target, open_now, server.memory_info().rss, seconds, len(sockets) - before, server_cpu, client_cpu
            )
            run.steps.append(step)
            print(
                f"  {target:>6} asked  {open_now:>6} open  {step.new / seconds:>7.0f} connects/s  "
                f"RSS {step.rss / 2**20:>7.1f} MiB  {run.kb_per_connection(step):>6.1f} KB/connection  "
                f"CPU server {server_cpu:.0%} client {client_cpu:.0%}  failures so far {dict(failures) or 0}"
            )
            if open_now < target * 0.99:
                print(f"  stopping: only {open_now} of {target} open")
                break
        run.failures = failures
        if args.hold > 0 and sockets:
            await asyncio.sleep(args.hold)
            run.held_after = _still_open(sockets)
            run.hold_rss = server.memory_info().rss
            print(
                f"  after holding {args.hold:g} s (one server heartbeat per socket): {run.held_after} of "
                f"{len(sockets)} still open, RSS {run.hold_rss / 2**20:.1f} MiB"
            )
    finally:
        # Abort rather than close: the server sees the disconnects all the same, and this side is instant.
        for ws in sockets:
            ws.transport.abort()
    return run


def _cpu(process: Any) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _raise_nofile() -> int:
    """Raise this process's open-file limit to the hard limit; children (the server) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _idle_user_keys(user_id: int) -> dict[str, str]:
    """The Redis keys an idle user's sockets write: channel group members, the connection count, connect rate."""
    from django.conf import settings

    from offload.lib.redis_state import key
    from offload.notifications.publisher import user_group

    layer_prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    return {
        "group members": f"{layer_prefix}:group:{user_group(user_id)}",
        "connection count": key("ws", "user", user_id),
        "connect rate entries": key("ratelimit", "ws_connect", f"user:{user_id}"),
    }


def _leftovers(user_id: int) -> dict[str, int]:
    """How many group members and counted connections the idle user still has in Redis."""
    from offload.lib.redis_state import state_redis

    client = state_redis()
    keys = _idle_user_keys(user_id)
    return {name: client.zcard(keys[name]) for name in ("group members", "connection count")}


def _drain(server_pid: int, user_id: int, limit: float) -> tuple[float, bool]:
    """Wait until the server has handled the disconnects: counts unchanged and its CPU idle for 3 s.

    Answers the seconds that took (the last busy second's end) and whether it settled within
    `limit`, so what is then left in Redis is left for good, not merely late.
    """
    import psutil

    server = psutil.Process(server_pid)
    began = time.monotonic()
    last_busy = began
    counts, cpu = _leftovers(user_id), _cpu(server)
    quiet = 0
    while quiet < 3:
        if time.monotonic() - began > limit:
            return limit, False
        time.sleep(1)
        now_counts, now_cpu = _leftovers(user_id), _cpu(server)
        if now_counts == counts and now_cpu - cpu < 0.05:
            quiet += 1
        else:
            quiet, last_busy = 0, time.monotonic()
        counts, cpu = now_counts, now_cpu
    return last_busy - began, True


def _log_errors(log: Path, offset: int) -> Counter:
    """Exception lines the server logged after `offset` bytes, by their last line."""
    counts: Counter = Counter()
    with open(log, "rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode(errors="replace").splitlines():
            if line and not line[0].isspace() and ("Error" in line.split(":", 1)[0] or line.startswith("ERROR")):
                counts[line[:120]] += 1
    return counts


def _forget_idle_user(user_id: int) -> None:
    """Drop what the aborted sockets may have left in Redis: group members, the connection count, rate-limit entries."""
    from offload.lib.redis_state import state_redis

    state_redis().delete(*_idle_user_keys(user_id).values())


def idle_part(args: argparse.Namespace) -> list[IdleRun]:
    """--runs fresh single-process servers, each taken through the steps."""
    hard = _raise_nofile()
    largest = max(args.steps)
    if largest + 200 > hard:
        raise SystemExit(
            f"--steps up to {largest} needs an open-file limit above {largest + 200}; the hard limit is {hard}"
        )
    user, token = common.user_with_token(IDLE_USER)
    port = common.BASE_PORT + 1
    base = f"http://127.0.0.1:{port}"
    env = {
        "OFFLOAD_WS_MAX_CONNECTIONS_PER_USER": str(largest * 2),
        "OFFLOAD_RATE_WS_CONNECT": "100000000/60",
    }
    runs = []
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    for run_no in range(1, args.runs + 1):
        _forget_idle_user(user.pk)
        log = common.LOG_DIR / "uvicorn-idle.log"
        offset = log.stat().st_size if log.exists() else 0
        with common.Children() as children:
            server = common.start_uvicorn(children, "uvicorn-idle", port, env=env)
            common.wait_for_http(f"{base}/healthz/live", server)
            print(f"\nidle connections, run {run_no} (server pid {server.pid}; load average {_load()}):")
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                run = runner.run(
                    _idle_steps(server.pid, base.replace("http://", "ws://") + "/ws/events/", base, token, args)
                )
            print(f"  baseline RSS {run.baseline_rss / 2**20:.1f} MiB; server open-file limit {run.nofile}")
            runs.append(run)
            run.drain_seconds, run.settled = _drain(server.pid, user.pk, args.drain)
            run.leftovers = _leftovers(user.pk)
        run.errors = _log_errors(log, offset)
        settled = f"the server was busy for {run.drain_seconds:.0f} s" if run.settled else "it had not settled"
        print(
            f"  this side aborted every socket; {settled}; then Redis still held {run.leftovers}, and the "
            f"server had logged {sum(run.errors.values())} error lines"
        )
        for line, n in run.errors.most_common(5):
            print(f"    {n:>6} x {line}")
        _forget_idle_user(user.pk)
    return runs


# --- Main ---------------------------------------------------------------------------------------------


def _ms(values: list[float], pct: float) -> float:
    return common.percentile(values, pct) * 1000


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every option has a default that reproduces BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=500, help="jobs per latency run")
    parser.add_argument("--rate", type=float, default=20.0, help="jobs per second in the paced mode")
    parser.add_argument("--modes", default="burst,paced", help="latency modes to run: burst, paced")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one latency run may take")
    parser.add_argument(
        "--steps", default="1000,2000,5000,10000", help="idle sockets held at each step (comma-separated, rising)"
    )
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight while opening")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between a step's last open and the RSS read")
    parser.add_argument("--hold", type=float, default=25.0, help="seconds to hold the last step (0: no hold)")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="seconds at most for the server to handle the disconnects"
    )
    parser.add_argument("--idle-budget", type=float, default=120.0, help="seconds of stepping per idle run at most")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--no-anatomy", action="store_true", help="skip the in-process breakdown")
    args = parser.parse_args(argv)
    args.steps = sorted(int(s) for s in args.steps.split(","))
    args.modes = [m.strip() for m in args.modes.split(",")]
    return args


def print_latency_medians(results: dict[str, list[LatencyRun]]) -> None:
    """Median p50/p99/max over the runs, per mode."""
    for mode, runs in results.items():
        p50 = common.median([r.pct(50) for r in runs])
        p99 = common.median([r.pct(99) for r in runs])
        worst = common.median([r.pct(100) for r in runs])
        e2e = common.median([_ms(r.end_to_end, 50) for r in runs])
        print(
            f"  {mode:<6} finished_at → received: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms "
            f"(created_at → received p50 {e2e:.1f} ms)"
        )
        layer50, layer99 = (common.median([_ms(r.to_layer, p) for r in runs]) for p in (50, 99))
        asgi50, asgi99 = (common.median([_ms(r.layer_to_ws, p) for r in runs]) for p in (50, 99))
        print(
            f"         of which finished_at → channel layer: p50 {layer50:.1f} ms, p99 {layer99:.1f} ms; "
            f"channel layer → websocket client (the ASGI process): p50 {asgi50:.1f} ms, p99 {asgi99:.1f} ms"
        )


def print_idle_medians(runs: list[IdleRun]) -> None:
    """Per step: median RSS growth per connection and connect rate; the largest count held in every run."""
    targets = sorted({s.target for r in runs for s in r.steps})
    for target in targets:
        steps = [(r, s) for r in runs for s in r.steps if s.target == target]
        kb = common.median([r.kb_per_connection(s) for r, s in steps])
        rss = common.median([s.rss / 2**20 for _r, s in steps])
        rate = common.median([s.new / s.seconds for _r, s in steps])
        opened = min(s.open for _r, s in steps)
        print(
            f"  {target:>6} sockets: at least {opened} open in {len(steps)} runs, RSS {rss:.1f} MiB, "
            f"{kb:.1f} KB per connection over the baseline, {rate:.0f} connects/s"
        )
    held = [r.held_after for r in runs if r.held_after is not None]
    print(
        f"  largest step held in every run: {min(r.max_open for r in runs)}; "
        f"after the hold: {held}; baseline RSS {common.median([r.baseline_rss / 2**20 for r in runs]):.1f} MiB"
    )
    for i, r in enumerate(runs, 1):
        if r.failures:
            print(f"  run {i} failures: {dict(r.failures)}")
    left = [
        f"{r.leftovers.get('group members', 0)}/{r.max_open} group members, "
        f"{r.leftovers.get('connection count', 0)}/{r.max_open} counted connections, "
        f"busy {r.drain_seconds:.0f} s{'' if r.settled else ' (not settled)'}"
        for r in runs
    ]
    print(f"  left in Redis after aborting every socket at once: {'; '.join(left)}")


def main(argv: list[str] | None = None) -> int:
    """Measure the latency part, then the idle-connection part; print every run and the medians."""
    args = parse_args(argv)
    began = time.perf_counter()
    common.set_up("notify")

    print(f"websocket notifications ({time.strftime('%Y-%m-%d %H:%M')}):")
    common.print_summary(common.machine_summary())
    latency: dict[str, list[LatencyRun]] = {}
    idle: list[IdleRun] = []
    if not args.skip_latency:
        with common.Children() as children:
            latency = latency_part(children, args)
    if not args.no_anatomy:
        # No cluster runs now: the jobs enqueued here are executed by this process alone.
        anatomy(common.user_with_token(STAFF_USER, staff=True)[0].pk)
    if not args.skip_idle:
        idle = idle_part(args)

    print(f"\nmedian of {args.runs} runs:")
    if latency:
        print_latency_medians(latency)
    if idle:
        print_idle_medians(idle)
    print(f"\nfinished in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
