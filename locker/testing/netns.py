"""Fresh network namespaces for privileged tests.

Nothing a test does to the kernel's network may happen in the machine's own
namespace: a wrong rule there can cut the machine off. ``NetNS`` makes a
named namespace (``ip netns add``), runs commands in it, lets the test
process itself enter it, and deletes it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def missing_requirements(tools: Sequence[str] = ("ip",)) -> str | None:
    """Why privileged tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (privileged test: creates a network namespace)"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command"
    return None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def current_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


class NetNS:
    """A named network namespace, created on construction, with ``lo`` up."""

    def __init__(self, prefix: str = "lockertest") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.path = f"/run/netns/{self.name}"
        self.run(["ip", "link", "set", "lo", "up"])

    def run(self, argv: Sequence[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (``ip netns exec``, which also
        gives it a /sys of the namespace)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check, **kwargs)

    @contextmanager
    def entered(self) -> Iterator[None]:
        """Move the calling thread into the namespace for the ``with`` block."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False,
                       capture_output=True)

    def __enter__(self) -> NetNS:
        return self

    def __exit__(self, *exc) -> None:
        self.delete()
