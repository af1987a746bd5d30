"""The container runtime, behind a small interface so that operations can be
tested without LXC. ``locker.runtime.lxc.LxcRuntime`` is the real one;
``locker.testing.memory.MemoryRuntime`` the one for unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface
from typing import Protocol

from locker.project import Source

RUNNING = "RUNNING"
STOPPED = "STOPPED"
FROZEN = "FROZEN"
ABSENT = "ABSENT"


class Runtime(Protocol):
    """Containers by their LXC name (``<project>_<name>``).

    Every method raises ``locker.errors.LockerError`` with an actionable
    sentence when LXC fails.
    """

    def state(self, name: str) -> str:
        """RUNNING, STOPPED, FROZEN, or ABSENT when there is no such container."""

    def names(self) -> tuple[str, ...]:
        """The LXC names of every container in the lxcpath."""

    def create(self, name: str, source: Source, clone_from: str | None = None) -> None:
        """Create the container. For a CloneSource, ``clone_from`` is the
        LXC name to copy."""

    def destroy(self, name: str) -> None:
        """Delete a stopped container."""

    def configure(self, name: str, bridge: str, address: IPv4Interface,
                  gateway: IPv4Address, mounts: Sequence[tuple[str, str]] = (),
                  cgroup: Sequence[tuple[str, str]] = (), hostname: str | None = None) -> None:
        """Write the container's network (a veth on ``bridge`` with the
        static ``address`` and ``gateway``), bind mounts, cgroup settings
        and hostname into its configuration, replacing what Locker wrote
        before, so that the container comes up with its address."""

    def configured_address(self, name: str) -> IPv4Interface | None:
        """The static address in the container's configuration, if any."""

    def start(self, name: str, timeout: float) -> None:
        """Start the container and wait until it runs, at most ``timeout``
        seconds."""

    def stop(self, name: str, timeout: float) -> None:
        """Stop the container: cleanly within ``timeout`` seconds, then kill."""

    def freeze(self, name: str) -> None: ...

    def unfreeze(self, name: str) -> None: ...

    def apply_cgroup(self, name: str, settings: Sequence[tuple[str, str]]) -> None:
        """Set cgroup values on the running container."""

    def addresses(self, name: str) -> tuple[IPv4Address, ...]:
        """The IPv4 addresses the running container really has."""

    def read_file(self, name: str, path: str) -> str | None:
        """A file of the container's root file system, None if missing."""

    def write_file(self, name: str, path: str, text: str) -> None:
        """Replace a file in the container's root file system."""
