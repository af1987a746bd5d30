"""One host-wide lock around every change to the kernel's network, so that
two Locker commands never interleave their read-compare-apply steps, nor
hand two projects the same subnet."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from locker.errors import LockerError

DEFAULT_RUN_DIR = "/run/locker"


def lock_path() -> Path:
    """``$LOCKER_RUN_DIR/lock``, by default /run/locker/lock."""
    return Path(os.environ.get("LOCKER_RUN_DIR", DEFAULT_RUN_DIR)) / "lock"


def flock_within(fd: int, timeout: float, interval: float = 0.05) -> bool:
    """Take an exclusive flock on ``fd``, waiting at most ``timeout``
    seconds; False when it could not be had in time. (Polls, since flock
    itself cannot time out.)"""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


@contextmanager
def host_lock(path: Path | None = None, timeout: float = 60.0) -> Iterator[None]:
    path = path or lock_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise LockerError(f"Cannot open the lock file {path}: {exc.strerror}. "
                          f"Run locker as root, or set LOCKER_RUN_DIR.") from exc
    try:
        if not flock_within(fd, timeout):
            raise LockerError(f"Another locker command has held {path} for {timeout:.0f} s; "
                              f"wait for it to finish and try again.")
        yield
    finally:
        os.close(fd)
