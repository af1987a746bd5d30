"""SIGINT, SIGTERM and SIGHUP at every point of a command: one line, exit
130, 143 or 129, no traceback, every change made reported, nothing half made, and the
next command finishes the work (issue 12)."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import pytest

from test_cli import EXAMPLE, clean_environment, memory_cli, run  # noqa: F401  (fixtures)

from locker.journal import SIGNALS, Journal, whole
from locker.errors import Interrupted


@pytest.fixture(autouse=True)
def sighup_unhandled_fails():
    """SIGHUP's default action would kill the test run: where the command
    does not handle it, it fails the test instead."""
    def fail(signum, frame):
        pytest.fail("SIGHUP reached the handler the command found: locker does not handle it")
    previous = signal.signal(signal.SIGHUP, fail)
    yield
    signal.signal(signal.SIGHUP, previous)


def arm(objects, at: int, signum: int) -> list[str]:
    """Send ``signum`` to this process inside the ``at``-th call of any
    method of ``objects`` (counting from 1); returns the calls seen. The
    firewall's hooks stay as pluggy registered them: their kernel commit
    (``_commit``) is what is interrupted."""
    calls: list[str] = []
    for obj in objects:
        for name in dir(type(obj)):
            if (name.startswith("_") and name != "_commit") or hasattr(
                    getattr(obj, name), "locker_impl") or not callable(
                    getattr(type(obj), name, None)):
                continue
            original = getattr(obj, name)

            @functools.wraps(original)
            def wrapped(*args, __original=original, __name=name, **kwargs):
                calls.append(__name)
                if len(calls) == at:
                    os.kill(os.getpid(), signum)
                return __original(*args, **kwargs)
            setattr(obj, name, wrapped)
    return calls


def disarm(objects) -> None:
    for obj in objects:
        for name in list(vars(obj)):
            if callable(vars(obj)[name]):
                delattr(obj, name)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_at_any_point_of_start_is_one_line_and_reported_work(
        memory_cli, capsys, signum) -> None:  # noqa: F811
    firewall, runtime = memory_cli
    for at in range(1, 200):
        for name in list(runtime.containers):
            runtime.containers[name].state = "STOPPED"
        firewall.rules = type(firewall.rules)()
        capsys.readouterr()
        arm([runtime, firewall], at, signum)
        status = run("start")
        err = capsys.readouterr().err
        disarm([runtime, firewall])
        if status == 0:
            break  # past the last call: nothing left to interrupt
        assert status == 128 + signum, (at, err)
        lines = err.splitlines()
        assert "Traceback" not in err
        assert lines[-1] == (f"locker: error: interrupted by {signal.Signals(signum).name}; "
                             "no change was left half made, and the ones made are listed "
                             "above"), (at, err)
        assert sum("interrupted" in line for line in lines) == 1
        for container in ("web", "db"):
            if runtime.containers[f"shop_{container}"].state == "RUNNING":
                assert any(line.startswith(f"{container}: started") for line in lines), (at, err)
        for forward in firewall.rules.forwards:
            assert any(line.startswith(f"{forward.container}: added forward") for line in lines)
        # the next command finishes the work
        assert run("start") == 0, capsys.readouterr().err
        capsys.readouterr()
        assert run("status", "--check") == 0, capsys.readouterr()
    else:
        pytest.fail("start was never finished")
    assert at > 10, "too few points were interrupted"


def test_a_signal_during_a_change_waits_for_it_to_be_recorded() -> None:
    SIGNALS.reset()
    previous = signal.signal(signal.SIGINT, __import__("locker.journal").journal.interrupt)
    journal = Journal(report=lambda line: None)
    done = []
    try:
        from locker.journal import Change

        def action():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("all of it")
        with pytest.raises(Interrupted) as caught:
            journal.change(Change("web", "started", "container"), action)
            journal.change(Change("db", "started", "container"), lambda: done.append("db"))
        assert caught.value.exit_status == 130
        assert done == ["all of it"]
        assert [c.subject for c in journal.changes] == ["web"]
    finally:
        signal.signal(signal.SIGINT, previous)
        SIGNALS.reset()


def test_an_interruptible_change_is_interrupted() -> None:
    SIGNALS.reset()
    previous = signal.signal(signal.SIGINT, __import__("locker.journal").journal.interrupt)
    try:
        with pytest.raises(Interrupted):
            with whole(interruptible=True):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):
                    pass
                pytest.fail("not interrupted")
    finally:
        signal.signal(signal.SIGINT, previous)
        SIGNALS.reset()


@pytest.mark.parametrize("command, prepare", [
    ("stop", "start"), ("down", "start"), ("up", None), ("rm --force", "start"),
])
def test_a_signal_at_any_point_of_other_commands(memory_cli, capsys, command,  # noqa: F811
                                                 prepare) -> None:
    import copy

    firewall, runtime = memory_cli
    pristine = copy.deepcopy(runtime.containers)
    for at in range(1, 200):
        runtime.containers = copy.deepcopy(pristine)
        firewall.rules = type(firewall.rules)()
        if command == "up":
            del runtime.containers["shop_db"]
        if prepare:
            assert run(prepare) == 0
        capsys.readouterr()
        arm([runtime, firewall], at, signal.SIGINT)
        status = run(*command.split())
        err = capsys.readouterr().err
        disarm([runtime, firewall])
        if status == 0:
            break
        assert status == 130, (at, err)
        assert "Traceback" not in err
        assert err.splitlines()[-1].startswith("locker: error: interrupted by SIGINT"), err
        for name, container in runtime.containers.items():
            short = name.split("_", 1)[1]
            before = pristine.get(name)
            if prepare and container.state == "STOPPED":
                assert f"{short}: stopped" in err, (at, err)
            if command == "up" and before is None:
                assert f"{short}: created" in err, (at, err)
        # the command run again finishes the work (rm: what is gone is "not created")
        again = run(*command.split())
        if command.startswith("rm"):
            assert runtime.containers == {}, capsys.readouterr().err
        else:
            assert again == 0, capsys.readouterr().err
    else:
        pytest.fail(f"{command} was never finished")
    assert at > 3


def test_a_signal_after_the_command_ended_changes_no_exit_status(tmp_path) -> None:
    """As the program, a signal right after main() returns is ignored with
    SIG_IGN, which Python's finalization keeps (a Python handler it would
    replace by the default action: death by the signal, exit -2 or -15)."""
    import subprocess
    import sys
    script = ("import os, signal, sys\n"
              "from locker.cli import main as m\n"
              "status = m.main(None)\n"
              "assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN\n"
              "assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN\n"
              "assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN\n"
              "os.kill(os.getpid(), signal.SIGTERM)\n"
              "os.kill(os.getpid(), signal.SIGHUP)\n"
              "os.kill(os.getpid(), signal.SIGINT)\n"
              "sys.exit(status)\n")
    (tmp_path / "none.yaml").write_text("# empty\n")
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "locker.yaml").write_text("containers: {web: {}}\n")
    done = subprocess.run([sys.executable, "-c", script, "-f", "shop/locker.yaml", "validate"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={"LOCKER_CONFIG": str(tmp_path / "none.yaml"),
                               "LOCKER_STATE_DIR": str(tmp_path / "state"),
                               "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, done.stderr
    assert "no problems" in done.stdout and done.stderr == ""


def test_a_reading_command_interrupted_says_only_that(memory_cli, capsys) -> None:  # noqa: F811
    firewall, runtime = memory_cli
    assert run("start") == 0
    capsys.readouterr()
    arm([runtime, firewall], 1, signal.SIGINT)
    try:
        assert run("status") == 130
    finally:
        disarm([runtime, firewall])
    assert capsys.readouterr().err == "locker: error: interrupted by SIGINT\n"


def test_a_ctrl_c_before_lockers_handlers_are_in_place_is_one_line(monkeypatch, capsys) -> None:
    """Under load a Ctrl-C can come while main() still imports what it
    needs: one line and exit 130, no traceback."""
    import sys as system

    from locker.cli import main as cli_main

    class Interrupting:
        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setitem(system.modules, "locker.journal", Interrupting())
    assert cli_main.main(["validate"]) == 130
    err = capsys.readouterr().err
    assert err == "locker: error: interrupted by SIGINT before anything was done\n"
