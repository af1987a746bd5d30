"""Which commands need root, and saying so before anything is touched.

Every command that changes the host (its network, its LXC containers, its
/etc/hosts, Locker's host state) or reads the kernel's firewall rules needs
root. ``--help``, ``--version``, ``validate``, ``ls`` and ``backends`` do
not: ``backends`` then says "needs root" rather than guessing a verdict.
"""

from __future__ import annotations

import os

from locker.errors import LockerError

#: Commands that only read a file or the host state.
WITHOUT_ROOT = {"validate", "ls", "backends", "completion"}


class NeedsRoot(LockerError):
    """The command needs root, and Locker does not run as root (exit 1)."""


def is_root() -> bool:
    return os.geteuid() == 0


def require_root(command: str) -> None:
    """Refuse, in one sentence, a command that needs root when not root."""
    if command in WITHOUT_ROOT or is_root():
        return
    doing = {"status": "reads the kernel's firewall rules and the containers' state",
             "plan": "reads the kernel's firewall rules and the containers' state",
             "logs": "reads a container's console log in LXC's directory",
             "exec": "enters a container", "attach": "enters a container",
             "console": "enters a container"}.get(
                 command, "changes the host's network and its LXC containers")
    raise NeedsRoot(f"locker {command} {doing}, which needs root: run locker as root "
                    f"(sudo locker {command}); validate, ls and backends work without it.")
