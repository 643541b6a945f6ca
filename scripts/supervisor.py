"""A supervisor of child processes, for `make run` (scripts/run.py) and nothing Offload-specific.

Each child runs in its own process group with its log in a folder of its own; a child that
crashes is restarted after a backoff while the others keep running; Ctrl-C, SIGTERM or SIGHUP
stops them all, a tier at a time (the app before the services it uses), each with its own stop
signal and grace period. `run_supervised` wraps a script's body in that and answers its exit code.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

LOG_TAIL_LINES = 30

# Tiers stop in descending order: the app before the services it uses.
APP_TIER = 1
SERVICE_TIER = 0

# A child that dies is started again after a backoff that doubles with each crash in a row,
# up to the cap; a child that ran this long before dying starts the count afresh.
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
RESTART_STABLE_SECONDS = 60.0


class Stop(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP arrived; a BaseException so that no handler swallows it."""


class StartupFailed(Exception):
    """Something needed did not start; the message says what and where to look."""


def say(message: str = "", *, stream: TextIO | None = None) -> None:
    """Print a line; a closed terminal (SIGHUP) must not keep the children from being stopped."""
    try:
        print(message, file=stream or sys.stdout, flush=True)
    except OSError:
        pass


def warn(message: str) -> None:
    say(f"run: {message}", stream=sys.stderr)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _child_setup(stop_signal: int) -> Callable[[], None]:
    """A preexec hook: unblock the stop signals, and have the child get stop_signal when this script dies."""
    parent = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None  # not Linux: no parent-death signal, the stop path still works
    pr_set_pdeathsig = 1

    def hook() -> None:
        # Supervisor.start blocks them around the fork; the mask would survive exec.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if prctl is not None:
            prctl(pr_set_pdeathsig, stop_signal)
            # Even SIGKILL of this script then stops the child; it may have died before prctl.
            if os.getppid() != parent:
                os.kill(os.getpid(), stop_signal)

    return hook


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    stop_signal: int
    grace: float
    tier: int
    args: list[str]
    env: dict[str, str]
    started_at: float = 0.0
    # Crashes in a row, and when the pending restart is due (None: none pending).
    crashes: int = 0
    restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class Supervisor:
    """Children in their own process groups, logging to var/log, stopped together."""

    def __init__(self, log_dir: Path, cwd: Path) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self.children: list[Child] = []
        self.force = False
        self.stopping = False

    def start(
        self,
        name: str,
        args: list[str],
        *,
        env: dict[str, str],
        stop_signal: int = signal.SIGTERM,
        grace: float = 10.0,
        tier: int = APP_TIER,
    ) -> Child:
        log_path = self.log_dir / f"{name}.log"
        if log_path.exists():
            os.replace(log_path, log_path.with_suffix(".log.1"))
        # A stop signal between the fork and the bookkeeping below would leave an unknown child.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            proc = self._spawn(args, env, log_path, stop_signal, "wb")
            child = Child(name, proc, log_path, stop_signal, grace, tier, args, env, started_at=time.monotonic())
            self.children.append(child)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return child

    def _spawn(
        self, args: list[str], env: dict[str, str], log_path: Path, stop_signal: int, mode: str
    ) -> subprocess.Popen:
        with open(log_path, mode) as log_file:
            return subprocess.Popen(
                args,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own group: the terminal's Ctrl-C reaches this script alone, which then
                # stops the children in order; and killpg reaches their own children too.
                process_group=0,
                preexec_fn=_child_setup(stop_signal),
            )

    def schedule_restart(self, child: Child) -> float:
        """After a crash: clear what the child left in its group, and set when it starts again."""
        # Whatever the dead leader left behind (a qcluster's workers, an ffmpeg) goes first.
        self._signal_group(child, signal.SIGKILL)
        if time.monotonic() - child.started_at >= RESTART_STABLE_SECONDS:
            child.crashes = 0
        delay = min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2**child.crashes)
        child.crashes += 1
        child.restart_at = time.monotonic() + delay
        return delay

    def restart(self, child: Child) -> None:
        """Start the crashed child again with its own command and environment; its log continues."""
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            with open(child.log_path, "ab") as log_file:
                log_file.write(f"\n--- run: restarted after a crash (restart {child.crashes}) ---\n".encode())
            child.proc = self._spawn(child.args, child.env, child.log_path, child.stop_signal, "ab")
            child.started_at = time.monotonic()
            child.restart_at = None
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def supervise(self) -> None:
        """One round: note new deaths (with a log line and a backoff), restart those that are due."""
        for child in self.children:
            if child.alive or self.stopping:
                continue
            if child.restart_at is None:
                report_death(child)
                delay = self.schedule_restart(child)
                warn(f"restarting {child.name} in {delay:g} s (crash {child.crashes} in a row).")
            elif time.monotonic() >= child.restart_at:
                self.restart(child)
                say(f"run: {child.name} restarted (pid {child.proc.pid}).")

    def _signal_group(self, child: Child, sig: int) -> None:
        try:
            os.killpg(child.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _wait(self, child: Child, deadline: float) -> bool:
        while child.alive:
            if self.force or time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop_all(self) -> None:
        """Stop every child: its stop signal to the group, then SIGKILL after its grace period."""
        self.stopping = True
        for tier in sorted({c.tier for c in self.children}, reverse=True):
            group = [c for c in self.children if c.tier == tier]
            started = time.monotonic()
            for child in group:
                if child.alive:
                    say(f"Stopping {child.name} (pid {child.proc.pid})…")
                    self._signal_group(child, child.stop_signal)
            for child in group:
                if not self._wait(child, started + child.grace):
                    warn(f"{child.name} did not stop within {child.grace:g} s: killing it.")
                    self._signal_group(child, signal.SIGKILL)
                    child.proc.wait()
                # Whatever the leader left behind in its group (workers, an ffmpeg) goes too.
                self._signal_group(child, signal.SIGKILL)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def report_death(child: Child) -> None:
    code = child.proc.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    warn(f"{child.name} (pid {child.proc.pid}) {how} unexpectedly. Last lines of {child.log_path}:")
    say(tail(child.log_path), stream=sys.stderr)


def wait_until(what: str, check: Callable[[], bool], child: Child, timeout: float) -> None:
    """Poll check() until true; StartupFailed when the child dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        if not child.alive:
            report_death(child)
            raise StartupFailed(f"{child.name} stopped before {what}.")
        if time.monotonic() >= deadline:
            raise StartupFailed(f"{what} did not happen within {timeout:g} s; see {child.log_path}.")
        time.sleep(0.2)


def on_signal(sup: Supervisor) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        if sup.stopping:
            # A second Ctrl-C while stopping: stop waiting for graceful exits.
            sup.force = True
            return
        raise Stop(signal.Signals(signum).name)

    return handler


def supervise_forever(sup: Supervisor) -> None:
    """Restart crashed children (with a backoff) while the others keep running, until a stop signal."""
    while True:
        sup.supervise()
        time.sleep(0.2)


def run_supervised(body: Callable[[Supervisor], int], sup: Supervisor, on_exit: Callable[[], None]) -> int:
    """Run body(sup) with the stop signals turned into Stop; however it ends, stop every child, then on_exit().

    The exit code is body's, 1 when something needed did not start, 0 after a stop signal.
    """
    handler = on_signal(sup)
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    code = 0
    try:
        code = body(sup)
    except Stop as stop:
        say(f"\nGot {stop}: stopping everything.")
    except StartupFailed as exc:
        warn(str(exc))
        code = 1
    finally:
        sup.stopping = True
        sup.stop_all()
        on_exit()
    if sup.children:
        say("Everything stopped.")
    return code
