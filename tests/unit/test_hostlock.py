"""The host-wide lock: holders take turns, a stuck holder is a clear error."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from locker.errors import LockerError
from locker.hostlock import host_lock, lock_path


def test_run_dir_comes_from_the_environment(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKER_RUN_DIR", str(tmp_path / "run"))
    assert lock_path() == tmp_path / "run" / "lock"
    with host_lock():
        assert (tmp_path / "run" / "lock").exists()


def test_default_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKER_RUN_DIR", raising=False)
    assert lock_path() == Path("/run/locker/lock")


def test_two_holders_take_turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second holder is refused by the kernel while the first holds the
    lock (seen, not waited for with a sleep), and gets it once released."""
    import fcntl

    path = tmp_path / "lock"
    events: list[str] = []
    first_holds, second_refused = threading.Event(), threading.Event()
    flock = fcntl.flock

    def observed_flock(fd: int, operation: int) -> None:
        try:
            flock(fd, operation)
        except BlockingIOError:
            if threading.current_thread() is thread:
                second_refused.set()
            raise

    monkeypatch.setattr(fcntl, "flock", observed_flock)

    def second() -> None:
        first_holds.wait()
        with host_lock(path, timeout=30):
            events.append("second in")

    thread = threading.Thread(target=second)
    thread.start()
    with host_lock(path, timeout=5):
        events.append("first in")
        first_holds.set()
        refused = second_refused.wait(30)
        events.append("first out")
    thread.join(30)
    assert refused, "the second holder was never refused while the first held the lock"
    assert events == ["first in", "first out", "second in"]


def test_a_held_lock_times_out_with_a_locker_error(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with host_lock(path):
        started = time.monotonic()
        with pytest.raises(LockerError, match="Another locker command") as caught:
            with host_lock(path, timeout=0.2):
                pytest.fail("the lock was taken twice")
        assert time.monotonic() - started >= 0.2  # it waited its timeout before giving up
        assert str(path) in str(caught.value)


def test_the_lock_is_released_after_an_error(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with pytest.raises(RuntimeError):
        with host_lock(path):
            raise RuntimeError("boom")
    with host_lock(path, timeout=0.1):
        pass


def test_an_unusable_run_dir_is_a_locker_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LOCKER_RUN_DIR", str(blocker / "sub"))
    with pytest.raises(LockerError, match="LOCKER_RUN_DIR"):
        with host_lock():
            pass


def test_a_project_lock_held_elsewhere_is_waited_for_then_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from locker.hostlock import project_lock

    monkeypatch.setenv("LOCKER_RUN_DIR", str(tmp_path))
    said: list[str] = []
    with project_lock("shop"):
        with pytest.raises(LockerError, match="changing project shop"):
            with project_lock("shop", timeout=0.1, waiting=said.append):
                pass
        with project_lock("blog", timeout=0.1):  # another project is not held up
            pass
    assert said == ["another locker command is changing project shop; waiting for it "
                    "(at most 0 s)"]
    with project_lock("shop", timeout=0.1):  # released
        pass
