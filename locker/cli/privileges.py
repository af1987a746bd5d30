"""Which commands need root, and saying so before anything is touched.

Every command that changes the host (its network, its LXC containers, its
/etc/hosts, Locker's host state) or reads the kernel's firewall rules needs
root. ``--help``, ``--version``, ``validate``, ``ls``, ``backends`` and
``status`` do not: ``backends`` then says "needs root" rather than guessing
a verdict, ``status`` shows what a user may read (the containers' states as
LXC shows them, the network as the host state recorded it), and ``status
--check``, which needs the kernel's rules, refuses.
"""

from __future__ import annotations

import os

from locker.errors import LockerError



def without_root() -> set[str]:
    """The commands that only read a file or the host state (registered
    with ``root=False``)."""
    from locker.cli.main import registry

    return {name for name, command in registry().items() if not command.root}


class NeedsRoot(LockerError):
    """The command needs root, and Locker does not run as root (exit 1)."""


def is_root() -> bool:
    return os.geteuid() == 0


def require_root(command: str) -> None:
    """Refuse, in one sentence, a command that needs root when not root."""
    if command in without_root() or is_root():
        return
    doing = {"status --check": "compares with the kernel's firewall rules",
             "plan": "reads the kernel's firewall rules and the containers' state",
             "logs": "reads a container's console log in LXC's directory",
             "exec": "enters a container", "attach": "enters a container",
             "console": "enters a container"}.get(
                 command, "changes the host's network and its LXC containers")
    raise NeedsRoot(f"locker {command} {doing}, which needs root: run locker as root "
                    f"(sudo locker {command}); validate, ls, backends, plugins and status work "
                    f"without it.")
