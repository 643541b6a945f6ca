"""The supervisor `make run` keeps its children with: start, restart after a crash, stop in order, the exit code."""

import os
import signal

import psutil
import pytest

from tests.support.servers import run_script, supervisor_module
from tests.support.waiting import wait_for

supervisor = supervisor_module()
ENV = dict(os.environ)


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def sup(tmp_path):
    (tmp_path / "log").mkdir()
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and
    # an ignored signal stays ignored in children, which could then never trap it. run_supervised
    # installs its handlers before any child starts (so children get the default); here, without
    # it, the test process does the same for the duration.
    kept_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    kept = supervisor.Supervisor(tmp_path / "log", tmp_path)
    yield kept
    kept.stopping = True
    kept.stop_all()
    signal.signal(signal.SIGINT, kept_sigint)


@pytest.fixture
def signal_handlers():
    """run_supervised installs its own handlers for the stop signals; the test process gets its own back."""
    kept = {sig: signal.getsignal(sig) for sig in supervisor.STOP_SIGNALS}
    yield
    for sig, handler in kept.items():
        signal.signal(sig, handler)


def test_a_child_runs_in_its_own_group_with_its_own_log_and_the_previous_log_kept(sup, tmp_path):
    (tmp_path / "log" / "echo.log").write_text("the last run's\n")
    child = sup.start("echo", sh("echo hello from $PWD; exec sleep 60"), env=ENV)
    wait_for(lambda: "hello" in child.log_path.read_text(), timeout=10, what="the child's output in its log")
    assert child.log_path == tmp_path / "log" / "echo.log"
    assert f"hello from {tmp_path}" in child.log_path.read_text()
    assert (tmp_path / "log" / "echo.log.1").read_text() == "the last run's\n"
    assert os.getpgid(child.proc.pid) == child.proc.pid
    assert child.alive


def test_a_crashed_child_is_reported_then_restarted_with_its_command_and_log(sup, capsys):
    child = sup.start("flaky", sh("echo started; exit 3"), env=ENV)
    first = child.proc.pid
    wait_for(lambda: not child.alive, timeout=10, what="the child to exit")
    sup.supervise()
    err = capsys.readouterr().err
    assert f"run: flaky (pid {first}) exited with code 3 unexpectedly. Last lines of {child.log_path}:" in err
    assert "started" in err
    assert "run: restarting flaky in 1 s (crash 1 in a row)." in err
    wait_for(lambda: sup.supervise() or child.proc.pid != first, timeout=10, what="the restart")
    assert f"run: flaky restarted (pid {child.proc.pid})." in capsys.readouterr().out
    # Lines, not substrings: the restart's own marker says "restarted".
    wait_for(
        lambda: child.log_path.read_text().splitlines().count("started") == 2,
        timeout=10,
        what="the second run's output",
    )
    assert "--- run: restarted after a crash (restart 1) ---" in child.log_path.read_text()


def test_the_backoff_doubles_with_each_crash_in_a_row_up_to_its_cap_and_a_long_run_starts_it_afresh(sup):
    child = sup.start("crashy", sh("exit 1"), env=ENV)
    wait_for(lambda: not child.alive, timeout=10, what="the child to exit")
    assert [sup.schedule_restart(child) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    child.started_at -= supervisor.RESTART_STABLE_SECONDS
    assert sup.schedule_restart(child) == 1


def test_the_app_stops_before_the_services_it_uses_each_on_its_own_signal(sup, tmp_path):
    order = tmp_path / "order"

    def stops_on(name: str, sig: str) -> list[str]:
        return sh(f"trap 'echo {name} >> {order}; exit 0' {sig}; echo up; while :; do sleep 0.05; done")

    service = sup.start("service", stops_on("service", "TERM"), env=ENV, tier=supervisor.SERVICE_TIER)
    app = sup.start("app", stops_on("app", "INT"), env=ENV, stop_signal=signal.SIGINT)
    for child in (service, app):
        wait_for(lambda child=child: "up" in child.log_path.read_text(), timeout=10, what=f"{child.name} to start")
    sup.stop_all()
    assert order.read_text().split() == ["app", "service"]
    assert (app.proc.returncode, service.proc.returncode) == (0, 0)


def test_a_child_deaf_to_its_stop_signal_is_killed_after_its_grace_with_its_group(sup, tmp_path, capsys):
    left = tmp_path / "grandchild"
    script = f"trap '' TERM; sleep 60 & echo $! > {left}; while :; do sleep 0.05; done"
    stubborn = sup.start("stubborn", sh(script), env=ENV, grace=0.5)
    grandchild = int(wait_for(lambda: left.exists() and left.read_text().strip(), timeout=10, what="the grandchild"))
    sup.stop_all()
    assert stubborn.proc.returncode == -signal.SIGKILL
    assert "run: stubborn did not stop within 0.5 s: killing it." in capsys.readouterr().err
    wait_for(lambda: gone(grandchild), timeout=10, what="the grandchild to be killed with its group")


def test_the_exit_code_is_the_bodys_after_every_child_stopped(sup, signal_handlers, capsys):
    children, seen_at_exit = [], []

    def body(s) -> int:
        children.append(s.start("idle", sh("exec sleep 60"), env=ENV))
        return 3

    code = supervisor.run_supervised(body, sup, on_exit=lambda: seen_at_exit.extend(c.alive for c in children))
    assert code == 3
    assert seen_at_exit == [False]
    assert "Everything stopped." in capsys.readouterr().out


def test_a_child_that_dies_while_starting_exits_1_with_the_reason(sup, signal_handlers, capsys):
    def body(s) -> int:
        child = s.start("dies", sh("echo oops; exit 2"), env=ENV)
        supervisor.wait_until("it answered", lambda: False, child, timeout=30)
        return 0

    assert supervisor.run_supervised(body, sup, on_exit=lambda: None) == 1
    err = capsys.readouterr().err
    assert "exited with code 2 unexpectedly" in err and "oops" in err
    assert "run: dies stopped before it answered." in err


def test_a_stop_signal_stops_everything_and_exits_0(sup, signal_handlers, capsys):
    children = []

    def body(s) -> int:
        children.append(s.start("idle", sh("exec sleep 60"), env=ENV))
        os.kill(os.getpid(), signal.SIGTERM)
        supervisor.supervise_forever(s)
        return 5

    assert supervisor.run_supervised(body, sup, on_exit=lambda: None) == 0
    assert "Got SIGTERM: stopping everything." in capsys.readouterr().out
    assert not children[0].alive


def test_make_run_keeps_its_children_with_this_supervisor():
    run = run_script()
    assert (run.Supervisor, run.run_supervised, run.wait_until) == (
        supervisor.Supervisor,
        supervisor.run_supervised,
        supervisor.wait_until,
    )
