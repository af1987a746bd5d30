"""The xtables lock: the flock ``iptables`` takes on ``/run/xtables.lock``
around every change. python-iptables does not take it, so this backend
does, so that it and ``iptables -w`` (Docker, firewalld, admins) take turns
instead of failing each other's commits."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from locker.errors import BackendError
from locker.hostlock import flock_within

DEFAULT_PATH = "/run/xtables.lock"


def lock_path() -> str:
    """The lock file ``iptables`` uses here (``XTABLES_LOCKFILE`` overrides
    the default, as for ``iptables`` itself)."""
    return os.environ.get("XTABLES_LOCKFILE") or DEFAULT_PATH


@contextmanager
def xtables_lock(timeout: float, path: str | None = None,
                 interval: float = 0.02) -> Iterator[None]:
    """Hold the xtables lock exclusively for the ``with`` block, waiting at
    most ``timeout`` seconds for it."""
    path = path or lock_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise BackendError(f"Cannot open the xtables lock {path}: {err.strerror}; "
                           "run Locker as root.") from None
    try:
        if not flock_within(fd, timeout, interval):
            raise BackendError(
                f"Another program has held the xtables lock {path} for more than "
                f"{timeout:g} s; find it with `fuser -v {path}` and try again "
                "when it is done.")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
