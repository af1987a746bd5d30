"""Locker's two locks, and the order they are taken in.

The lock discipline, which every operation keeps:

1. **The project lock** (``project_lock``, ``$LOCKER_RUN_DIR/projects/
   <project>.lock``) is held for the whole of every command that changes a
   project (``start``, ``stop``, ``ports``, ``links``, ``cleanup``,
   ``restore`` of that project, ...). Two commands on one project never
   interleave: the second waits, saying so, and then sees the first one's
   result. Read-only commands (``status``, ``ls``, dry runs) take no lock.
2. **The host lock** (``host_lock``, ``$LOCKER_RUN_DIR/lock``) is taken,
   always *inside* a project lock or alone, never the other way round,
   around each read-compare-apply step on what projects share: choosing a
   subnet and creating the bridge; each firewall hook call that changes
   rules, together with the read it is computed from; handing out
   addresses and writing them into containers' configs; the host state
   records; the host's own ``/etc/hosts``. It is held briefly: no LXC
   start or stop and no file inside a container is done under it.

So a ``ports`` racing a ``stop`` of the same project runs before or after
it, and either way ends with the stopped container's rules gone; two
projects' commands run in parallel and only queue for the short kernel
steps.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from locker.errors import LockerError

DEFAULT_RUN_DIR = "/run/locker"


def run_dir() -> Path:
    return Path(os.environ.get("LOCKER_RUN_DIR", DEFAULT_RUN_DIR))


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


def _open_lock(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise LockerError(f"Cannot open the lock file {path}: {exc.strerror}. "
                          f"Run locker as root, or set LOCKER_RUN_DIR.") from exc


@contextmanager
def host_lock(path: Path | None = None, timeout: float = 60.0) -> Iterator[None]:
    path = path or lock_path()
    fd = _open_lock(path)
    try:
        if not flock_within(fd, timeout):
            raise LockerError(f"Another locker command has held {path} for {timeout:.0f} s; "
                              f"wait for it to finish and try again.")
        yield
    finally:
        os.close(fd)


@contextmanager
def project_lock(project: str, timeout: float = 600.0,
                 waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``project``'s lock (see the module docstring); ``waiting``
    hears one sentence when another command holds it."""
    fd = _open_lock(run_dir() / "projects" / f"{project}.lock")
    try:
        if not flock_within(fd, 0):
            if waiting is not None:
                waiting(f"another locker command is changing project {project}; "
                        f"waiting for it (at most {timeout:.0f} s)")
            if not flock_within(fd, timeout):
                raise LockerError(f"Another locker command has been changing project "
                                  f"{project} for {timeout:.0f} s; wait for it and try again.")
        yield
    finally:
        os.close(fd)
