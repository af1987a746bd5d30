"""The container runtime, behind a small interface so that operations can be
tested without LXC. ``locker.runtime.lxc.LxcRuntime`` is the real one;
``locker.testing.memory.MemoryRuntime`` the one for unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import NamedTuple, Protocol

from locker.errors import LockerError
from locker.project import CgroupSetting, Source, VolumeSpec

RUNNING = "RUNNING"
STOPPED = "STOPPED"
FROZEN = "FROZEN"
ABSENT = "ABSENT"
UNKNOWN = "UNKNOWN"


class UnknownState(str):
    """UNKNOWN, carrying why the state could not be read (``lxc-info``
    failed, timed out, or printed a state Locker does not know). It
    compares equal to UNKNOWN. A container in this state may well run:
    nothing about it may be concluded, so nothing about it should change."""

    reason: str

    def __new__(cls, reason: str) -> UnknownState:
        state = super().__new__(cls, UNKNOWN)
        state.reason = reason
        return state


class CommandTimedOut(LockerError):
    """A command of the runtime did not finish in its time and was killed
    (with everything it had started)."""

    def __init__(self, message: str, command: Sequence[str], timeout: float) -> None:
        super().__init__(message)
        self.command = tuple(command)
        self.timeout = timeout


class Observed(NamedTuple):
    """One container as ``Runtime.survey`` found it: its state and, when
    asked for and it runs, the IPv4 addresses it has now."""

    state: str
    addresses: tuple[IPv4Address, ...] = ()


def state_reason(state: str) -> str | None:
    """Why ``state`` is UNKNOWN, or None for a known state."""
    if state != UNKNOWN:
        return None
    return getattr(state, "reason", None) or "its state could not be read"


class Runtime(Protocol):
    """Containers by their LXC name (``<project>_<name>``).

    Every method raises ``locker.errors.LockerError`` with an actionable
    sentence when LXC fails, and ``CommandTimedOut`` (a LockerError) when
    LXC does not answer in time: no call waits forever.
    """

    def state(self, name: str) -> str:
        """RUNNING, STOPPED, FROZEN, ABSENT when there is no such
        container, or UNKNOWN (an ``UnknownState`` whose ``reason`` says
        why, see ``state_reason``) when its state cannot be read. Never
        raises for a container that exists: an unreadable state is never
        taken for STOPPED."""

    def survey(self, names: Sequence[str], addresses: bool = False) -> dict[str, Observed]:
        """The state of each of ``names`` (as ``state`` gives it) and, with
        ``addresses``, the IPv4 addresses of those that run (as
        ``addresses`` gives them): what a command reads of all its
        containers, in as few queries as the runtime can."""

    def names(self) -> tuple[str, ...]:
        """The LXC names of every container in the lxcpath."""

    def create(self, name: str, source: Source, clone_from: str | None = None) -> None:
        """Create the container. For a CloneSource, ``clone_from`` is the
        LXC name to copy."""

    def destroy(self, name: str) -> None:
        """Delete a stopped container."""

    def configure(self, name: str, bridge: str, address: IPv4Interface,
                  gateway: IPv4Address, mounts: Sequence[VolumeSpec] = (),
                  cgroup: Sequence[CgroupSetting] = (), hostname: str | None = None,
                  address6: IPv6Interface | None = None,
                  gateway6: IPv6Address | None = None) -> None:
        """Write the container's network (a veth on ``bridge`` with the
        static ``address`` and ``gateway``, and ``address6`` and ``gateway6``
        when the project has IPv6), bind mounts, cgroup settings
        and hostname into its configuration, replacing what Locker wrote
        before, so that the container comes up with its address."""

    def configured_address(self, name: str) -> IPv4Interface | None:
        """The static address in the container's configuration, if any."""

    def start(self, name: str, timeout: float) -> None:
        """Start the container and wait until it runs, at most ``timeout``
        seconds (plus a margin for LXC itself)."""

    def stop(self, name: str, timeout: float) -> None:
        """Stop the container: cleanly within ``timeout`` seconds, then kill."""

    def freeze(self, name: str) -> None: ...

    def unfreeze(self, name: str) -> None: ...

    def apply_cgroup(self, name: str, settings: Sequence[CgroupSetting]) -> None:
        """Set cgroup values on the running container."""

    def addresses(self, name: str) -> tuple[IPv4Address, ...]:
        """The IPv4 addresses the running container really has."""

    def read_file(self, name: str, path: str) -> str | None:
        """A file of the container's root file system, None if missing.
        Raises ``locker.runtime.rootfs.ContainerFileRefused`` (a
        LockerError) for a file that is not a regular UTF-8 file of at most
        ``rootfs.MAX_FILE_BYTES``, or behind a symlink loop."""

    def write_file(self, name: str, path: str, text: str) -> None:
        """Replace a file in the container's root file system (a symlink
        there is replaced, not followed). Raises ``ContainerFileRefused``
        where a FIFO, device or directory is in its place."""

    def attach(self, name: str, command: Sequence[str] = ()) -> int:
        """Run ``command`` (empty: a login shell) in the running container,
        on the user's terminal; returns its exit status."""

    def console(self, name: str) -> int:
        """Connect the user's terminal to the container's console."""

    def console_log(self, name: str) -> str | None:
        """The end of the container's console log, None when there is none
        (Locker sets one up when it configures the container)."""
