"""Transcode overhead: one 30 s 720p clip through the API and the queue against bare ffmpeg.

Bare: ffmpeg with exactly the command line a worker runs for the profile h264-720p
(offload.profiles.transcode_args plus the leading options of offload.lib.ffmpeg.run_ffmpeg), its
`-progress` output read from a pipe, timed from start to exit.

Through the app: uvicorn (1 worker, Django's psycopg pool) and the media lane's qcluster (2 workers). A
websocket client, authenticated as the item's owner, is connected first; the clock starts when
`POST /api/v1/media/{id}/transcode/ {"profile": "h264-720p"}` is sent and stops when the client
hears "succeeded" (`--watch poll`: GET /api/v1/jobs/{id}/ every 0.1 s instead).

Where the difference goes comes from the job's own timestamps and a sampler thread that sees the
worker's ffmpeg start (its /proc start time, 10 ms resolution) and exit:
  accept        POST sent → job created_at (HTTP, token, enqueue's transaction)
  queue wait    created_at → started_at (the ORM broker's poll, the claim)
  before ffmpeg started_at → ffmpeg starts (ffprobe of the source, timeout lookup, Redis lock)
  ffmpeg        the same encode as the bare run, plus progress writes and cancel polling
  after ffmpeg  ffmpeg exits → finished_at (ffprobe of the output, rename, Rendition row)
  notify        finished_at → the client hears "succeeded" (commit, publish, websocket)

The source is generated once under var/bench/library/transcode/ with ffmpeg's lavfi sources.

Then --cancels transcodes are cancelled once they report progress: the time from the cancel POST
to the client hearing "cancelled", and whether an ffmpeg still ran at that moment.

    .venv/bin/python bench/transcode_overhead.py [--runs 3] [--watch ws|poll] [--cancels 5]
"""

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

PROFILE = "h264-720p"
LIBRARY_DIR = common.LIBRARY_ROOT / "transcode"
CLIP = LIBRARY_DIR / "clip-30s-720p.mp4"
BARE_DIR = common.VAR / "transcode-bare"
TERMINAL = ("succeeded", "failed", "cancelled")
# The leading options offload.lib.ffmpeg.run_ffmpeg puts before a profile's arguments.
RUN_FFMPEG_OPTIONS = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-nostats", "-progress", "pipe:1"]


@dataclass
class BareRun:
    """One bare ffmpeg run: wall time from start to exit, and the sampler's view of it."""

    wall: float
    sampled: float | None
    cpu: float  # ffmpeg's user + system CPU seconds (getrusage of the reaped child)


@dataclass
class AppRun:
    """One transcode through the API and the queue; every time is epoch seconds."""

    posted: float
    accepted: float  # the 202 arrived
    heard: float  # the client saw "succeeded"
    job: dict[str, Any]
    ffmpeg: tuple[float, float] | None  # the worker's ffmpeg, (start, end), from the sampler
    ffmpeg_cpu: float | None  # its user + system CPU seconds

    @property
    def end_to_end(self) -> float:
        return self.heard - self.posted

    @property
    def job_seconds(self) -> float:
        return _epoch(self.job["finished_at"]) - _epoch(self.job["started_at"])

    def segments(self) -> dict[str, float]:
        """Seconds in each step from POST to the client hearing "succeeded" (see the module docstring)."""
        created = _epoch(self.job["created_at"])
        started = _epoch(self.job["started_at"])
        finished = _epoch(self.job["finished_at"])
        parts = {"accept": created - self.posted, "queue wait": started - created}
        if self.ffmpeg is not None:
            ff_start, ff_end = self.ffmpeg
            parts |= {
                "before ffmpeg": ff_start - started,
                "ffmpeg": ff_end - ff_start,
                "after ffmpeg": finished - ff_end,
            }
        else:
            parts["job (ffmpeg not sampled)"] = finished - started
        parts["notify"] = self.heard - finished
        return parts


def _epoch(iso: str) -> float:
    """Epoch seconds from the API's ISO 8601 time ("…Z")."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# --- Seeing a worker's ffmpeg start and stop -------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _start_epoch(pid: int) -> float | None:
    """When a process started, in epoch seconds, from /proc/<pid>/stat (clock ticks since boot)."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)


def _children(pid: int) -> list[int]:
    """The direct children of every thread of a process (Linux /proc/<pid>/task/<tid>/children)."""
    found = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        found += [int(c) for c in (_read(f"/proc/{pid}/task/{tid}/children") or "").split()]
    return found


class FfmpegSampler:
    """A thread that records when an ffmpeg child of the given parents starts and exits.

    Looking for a new child costs a few /proc reads, so it runs every `scan` seconds; the start
    time comes from the kernel, not from when the sampler noticed. Once found, the process is
    watched every `tick` seconds until it is gone or a zombie (exited, not yet reaped).
    """

    def __init__(self, parents: Callable[[], list[int]], scan: float = 0.05, tick: float = 0.005) -> None:
        self.parents = parents
        self.scan = scan
        self.tick = tick
        self.runs: list[tuple[float, float]] = []
        self.cpu: list[float] = []  # CPU seconds of each run (the last reading before it was reaped)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-ffmpeg-sampler", daemon=True)

    def __enter__(self) -> "FfmpegSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _find(self) -> int | None:
        for parent in self.parents():
            for child in _children(parent):
                if (_read(f"/proc/{child}/comm") or "").strip() == "ffmpeg":
                    return child
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            pid = self._find()
            if pid is None:
                self._stop.wait(self.scan)
                continue
            started = _start_epoch(pid)
            cpu = 0.0
            while not self._stop.is_set():
                stat = _read(f"/proc/{pid}/stat")
                if stat is None:
                    break
                fields = stat[stat.rindex(")") + 2 :].split()
                # utime + stime; a zombie still shows its final totals.
                cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                if fields[0] == "Z":
                    break
                self._stop.wait(self.tick)
            if started is not None:
                self.runs.append((started, time.time()))
                self.cpu.append(cpu)
            # The same pid stays a zombie until its parent reaps it: wait that out.
            while not self._stop.is_set() and _read(f"/proc/{pid}/stat") is not None and pid in self._all_children():
                self._stop.wait(self.tick)

    def _all_children(self) -> list[int]:
        return [child for parent in self.parents() for child in _children(parent)]


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group (the qcluster's sentinel, workers, pusher and monitor)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            raw = _read(f"/proc/{entry}/stat")
            if raw is not None and int(raw[raw.rindex(")") + 2 :].split()[2]) == pgid:
                pids.append(int(entry))
    return pids


# --- Fixtures ---------------------------------------------------------------------------------------


def make_clip() -> Path:
    """A 30 s 1280x720 H.264/AAC clip from testsrc2 and a sine tone, generated once."""
    from offload.lib.ffmpeg import ffmpeg_binary

    if CLIP.is_file() and CLIP.stat().st_size > 0:
        return CLIP
    LIBRARY_DIR.mkdir(parents=True, exist_ok=True)
    partial = CLIP.with_suffix(".partial.mp4")
    common.run_checked(
        [
            ffmpeg_binary(),
            *("-y", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:duration=30"),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"),
            str(partial),
        ],
        timeout=300,
    )
    partial.rename(CLIP)
    return CLIP


def make_fixtures() -> tuple[str, int, dict[str, Any]]:
    """The owner's token, a probed media item for the clip, and the clip's technical metadata."""
    from offload.lib import ffmpeg
    from offload.lib.paths import resolve_library_path
    from offload.models import Library, MediaItem, MediaStatus

    clip = make_clip()
    user, token = common.user_with_token("bench-transcode")
    library, _ = Library.objects.update_or_create(
        name="bench-transcode", owner=user, defaults={"path": str(resolve_library_path(str(LIBRARY_DIR)))}
    )
    data = ffmpeg.probe(clip)
    technical = ffmpeg.technical_metadata(data)
    item, _ = MediaItem.objects.update_or_create(
        library=library,
        relative_path=clip.name,
        defaults={"size": clip.stat().st_size, "status": MediaStatus.READY, "probe": data, **technical},
    )
    return token, item.pk, technical


def bare_command(technical: dict[str, Any]) -> list[str]:
    """The worker's ffmpeg command line for the clip, writing under var/bench/ instead of MEDIA_ROOT."""
    from offload.lib import ffmpeg
    from offload.profiles import PROFILES, transcode_args

    profile = PROFILES[PROFILE]
    BARE_DIR.mkdir(parents=True, exist_ok=True)
    args = transcode_args(
        profile,
        ffmpeg.file_url(CLIP),
        str(BARE_DIR / f"{profile.name}.{profile.extension}"),
        source_height=technical["height"],
        has_audio=bool(technical["audio_codec"]),
    )
    return [ffmpeg.ffmpeg_binary(), *RUN_FFMPEG_OPTIONS, *args]


# --- The two sides -----------------------------------------------------------------------------------


def run_bare(command: list[str]) -> BareRun:
    """Run ffmpeg once, reading its progress pipe to the end as run_ffmpeg does."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with FfmpegSampler(lambda: [os.getpid()]) as sampler:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        _out, err = proc.communicate(timeout=600)
        wall = time.perf_counter() - started
        # Let the sampler see the exit.
        time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"bare ffmpeg failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    return BareRun(wall, sampler.runs[-1][1] - sampler.runs[-1][0] if sampler.runs else None, cpu)


def _http(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {"error": exc.read()[:500].decode(errors="replace")}


async def _transcode_via_app(base: str, token: str, item_id: int, watch: str, timeout: float) -> AppRun:
    ws_url = base.replace("http://", "ws://") + "/ws/events/"
    async with common.authenticated_websocket(ws_url, base, token) as ws:
        posted = time.time()
        status, job = await asyncio.to_thread(
            _http, "POST", f"{base}/api/v1/media/{item_id}/transcode/", token, {"profile": PROFILE}
        )
        accepted = time.time()
        if status != 202:
            raise RuntimeError(f"POST transcode answered {status}: {job}")
        deadline = time.monotonic() + timeout
        if watch == "ws":
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"job {job['id']} did not finish within {timeout:g} s")
                message = json.loads(await asyncio.wait_for(ws.recv(), remaining))
                heard = time.time()
                if message.get("type") == "job" and message["job"]["id"] == job["id"]:
                    if message["job"]["status"] in TERMINAL:
                        job = message["job"]
                        break
        else:
            while True:
                await asyncio.sleep(0.1)
                _status, current = await asyncio.to_thread(_http, "GET", f"{base}/api/v1/jobs/{job['id']}/", token)
                heard = time.time()
                if current.get("status") in TERMINAL:
                    job = current
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job['id']} did not finish within {timeout:g} s")
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
    return AppRun(posted, accepted, heard, job, None, None)


def run_app(base: str, token: str, item_id: int, cluster_pid: int, watch: str, timeout: float) -> AppRun:
    """One transcode through POST → queue → worker → the client hearing "succeeded"."""
    workers = group_pids(cluster_pid)
    with FfmpegSampler(lambda: workers) as sampler:
        run = asyncio.run(_transcode_via_app(base, token, item_id, watch, timeout))
    run.ffmpeg = sampler.runs[-1] if sampler.runs else None
    run.ffmpeg_cpu = sampler.cpu[-1] if sampler.cpu else None
    return run


def _ffmpeg_running(cluster_pid: int) -> bool:
    """Whether an ffmpeg runs under the cluster's workers."""
    return any(
        (_read(f"/proc/{child}/comm") or "").strip() == "ffmpeg"
        for pid in group_pids(cluster_pid)
        for child in _children(pid)
    )


async def _cancel_via_app(base: str, token: str, item_id: int, cluster_pid: int, timeout: float) -> tuple[float, bool]:
    """Start a transcode, cancel it once it reports progress; answer (seconds from the cancel
    POST to the client hearing "cancelled", whether an ffmpeg still ran at that moment)."""
    ws_url = base.replace("http://", "ws://") + "/ws/events/"
    async with common.authenticated_websocket(ws_url, base, token) as ws:
        status, job = await asyncio.to_thread(
            _http, "POST", f"{base}/api/v1/media/{item_id}/transcode/", token, {"profile": PROFILE}
        )
        if status != 202:
            raise RuntimeError(f"POST transcode answered {status}: {job}")
        deadline = time.monotonic() + timeout
        cancelled_at = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"job {job['id']} was not cancelled within {timeout:g} s")
            message = json.loads(await asyncio.wait_for(ws.recv(), remaining))
            if message.get("type") != "job" or message["job"]["id"] != job["id"]:
                continue
            current = message["job"]
            if cancelled_at is None and (current.get("progress") or 0) > 0:
                cancelled_at = time.time()
                status, _ = await asyncio.to_thread(_http, "POST", f"{base}/api/v1/jobs/{job['id']}/cancel/", token)
                if status != 202:
                    raise RuntimeError(f"POST cancel answered {status}")
            elif current["status"] in TERMINAL:
                if current["status"] != "cancelled" or cancelled_at is None:
                    raise RuntimeError(f"job {job['id']} ended {current['status']} before it could be cancelled")
                return time.time() - cancelled_at, _ffmpeg_running(cluster_pid)


def step_costs(technical: dict[str, Any]) -> dict[str, float]:
    """What the worker does around ffmpeg, timed alone in this process (median ms of 5)."""
    from offload.jobs.kinds import get_kind
    from offload.lib import ffmpeg
    from offload.models import Job

    output = BARE_DIR / f"{PROFILE}.mp4"
    costs: dict[str, list[float]] = {"ffprobe of the source": [], "ffprobe of the output": []}
    for _ in range(5):
        started = time.perf_counter()
        ffmpeg.technical_metadata(ffmpeg.probe(CLIP))
        costs["ffprobe of the source"].append(time.perf_counter() - started)
        started = time.perf_counter()
        ffmpeg.technical_metadata(ffmpeg.probe(output))
        costs["ffprobe of the output"].append(time.perf_counter() - started)
    job = Job.objects.filter(kind="media.transcode").order_by("-pk").first()
    if job is not None:
        costs["timeout lookup (1 query)"] = []
        for _ in range(5):
            started = time.perf_counter()
            get_kind(job.kind).timeout_for(job)
            costs["timeout lookup (1 query)"].append(time.perf_counter() - started)
    return {name: common.median(values) * 1000 for name, values in costs.items()}


# --- Main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every option has a default that reproduces BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs of each side first")
    parser.add_argument("--watch", choices=("ws", "poll"), default="ws", help="how the client learns it finished")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one app transcode may take")
    parser.add_argument("--cancels", type=int, default=5, help="transcodes cancelled mid-run, for the cancel latency")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Alternate bare and app transcodes --runs times; print each, the medians and the ratio."""
    args = parse_args(argv)
    began = time.perf_counter()
    common.set_up("transcode")

    token, item_id, technical = make_fixtures()
    command = bare_command(technical)
    port = common.BASE_PORT
    base = f"http://127.0.0.1:{port}"
    print(f"transcode overhead ({time.strftime('%Y-%m-%d %H:%M')}):")
    common.print_summary(common.machine_summary())
    print(
        f"  source              {CLIP.relative_to(common.ROOT)}: {technical['width']}x{technical['height']}, "
        f"{technical['duration']} s, {technical['video_codec']}/{technical['audio_codec']}"
    )
    print(f"  bare command        {' '.join(command)}")
    print(f"  app                 uvicorn 1 worker (pool {common.WEB_POOL_SIZE}) + qcluster, --watch {args.watch}")

    bare: list[BareRun] = []
    app: list[AppRun] = []
    with common.Children() as children:
        common.truncate_queue_tables()
        # One user polls and posts more than the default 300 requests a minute across the runs.
        web = common.start_uvicorn(children, "uvicorn-transcode", port, env={"OFFLOAD_RATE_API_USER": "100000/60"})
        # Transcodes run in the media lane: its cluster is the one measured.
        from django.conf import settings

        cluster = common.start_qcluster(
            children, "qcluster-transcode", env={"Q_CLUSTER_NAME": settings.OFFLOAD_LANES["media"]}
        )
        common.wait_for_http(f"{base}/healthz/live", web)
        for _ in range(args.warmup):
            run_bare(command)
            run_app(base, token, item_id, cluster.pid, args.watch, args.timeout)
        print(f"\nload average before the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(
            "run  bare s (sampled) cpu s   app s  ratio  job s  ffmpeg cpu s  "
            + "  ".join(f"{k:>13}" for k in _SEGMENT_NAMES)
        )
        for run in range(1, args.runs + 1):
            # Alternate which side goes first, so a drift in the machine's load favours neither.
            if run % 2:
                b = run_bare(command)
                a = run_app(base, token, item_id, cluster.pid, args.watch, args.timeout)
            else:
                a = run_app(base, token, item_id, cluster.pid, args.watch, args.timeout)
                b = run_bare(command)
            bare.append(b)
            app.append(a)
            segments = a.segments()
            print(
                f"{run:<4} {b.wall:>6.2f} {_fmt(b.sampled):>9} {b.cpu:>5.1f}  {a.end_to_end:>6.2f} "
                f"{a.end_to_end / b.wall:>6.3f} {a.job_seconds:>6.2f} {_fmt(a.ffmpeg_cpu):>13}  "
                + "  ".join(f"{segments.get(k, float('nan')):>13.3f}" for k in _SEGMENT_NAMES)
            )
        cancels = [
            asyncio.run(_cancel_via_app(base, token, item_id, cluster.pid, args.timeout)) for _ in range(args.cancels)
        ]
        print(f"load average after the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    costs = step_costs(technical)

    bare_wall = common.median([b.wall for b in bare])
    bare_sampled = common.median([b.sampled for b in bare if b.sampled is not None])
    end_to_end = common.median([a.end_to_end for a in app])
    job_seconds = common.median([a.job_seconds for a in app])
    ratios = [a.end_to_end / b.wall for a, b in zip(app, bare, strict=True)]
    print(f"\nmedian of {args.runs} runs:")
    bare_cpu = common.median([b.cpu for b in bare])
    app_cpu = common.median([a.ffmpeg_cpu for a in app if a.ffmpeg_cpu is not None])
    print(f"  bare ffmpeg                   {bare_wall:7.3f} s (sampler: {bare_sampled:.3f} s), CPU {bare_cpu:.2f} s")
    print(f"  the worker's ffmpeg           CPU {app_cpu:.2f} s ({app_cpu / bare_cpu:.3f}x bare)")
    print(f"  through the app, end to end   {end_to_end:7.3f} s")
    print(f"  the job's started→finished    {job_seconds:7.3f} s ({job_seconds / bare_wall:.3f}x bare)")
    print(
        f"  ratio app / bare              {end_to_end / bare_wall:7.3f} (median of per-run ratios "
        f"{common.median(ratios):.3f}; aim: at most 1.05)"
    )
    outside = common.median([a.end_to_end - a.segments().get("ffmpeg", float("nan")) for a in app])
    print(
        f"  time outside ffmpeg           {outside:7.3f} s = {outside / bare_wall:.1%} of bare ffmpeg: "
        f"with equal encodes the ratio would be {1 + outside / bare_wall:.3f}"
    )
    print("  where the difference goes (median seconds):")
    for name in _SEGMENT_NAMES:
        values = [a.segments()[name] for a in app if name in a.segments()]
        if not values:
            continue
        value = common.median(values)
        extra = f" ({value - bare_sampled:+.3f} s against bare ffmpeg's sampled time)" if name == "ffmpeg" else ""
        print(f"    {name:<14} {value:7.3f}{extra}")
    if cancels:
        seconds = [s for s, _ in cancels]
        left = sum(running for _, running in cancels)
        print(
            f'  cancel, POST → client hears "cancelled" ({len(cancels)} mid-transcode): median '
            f"{common.median(seconds):.3f} s, max {max(seconds):.3f} s (aim: under 2 s); "
            f"ffmpeg still running at that moment: {left} of {len(cancels)}"
        )
    print("  the worker's steps around ffmpeg, timed alone in this process (median of 5):")
    for name, ms in costs.items():
        print(f"    {name:<26} {ms:6.1f} ms")
    print(f"\nfinished in {time.perf_counter() - began:.0f} s")
    return 0


_SEGMENT_NAMES = ("accept", "queue wait", "before ffmpeg", "ffmpeg", "after ffmpeg", "notify")


def _fmt(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


if __name__ == "__main__":
    sys.exit(main())
