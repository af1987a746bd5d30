"""What one command works with: the project, the plugins, the runtime, and
the ways to talk to the user."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from ipaddress import IPv4Network, IPv6Network

import pluggy

from locker import ipv6, names
from locker.errors import ConfigError
from locker.hostlock import host_lock, project_lock
from locker.journal import Journal
from locker.model import Bridge
from locker.project import Project
from locker.runtime import Runtime
from locker.services.dns import DnsForwarder
from locker.state import HostState, ProjectRecord


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _ip_forwarding_off() -> bool:
    from locker.link.rules import ipv4_forwarding_off

    return ipv4_forwarding_off()


def _ra_interfaces() -> list[str]:
    from locker.link.rules import ra_interfaces

    return ra_interfaces()


def _foreign_dnats() -> list:
    from locker import foreign

    return foreign.nft_dnats() + foreign.legacy_dnats()


def _host_uses_cgroup2() -> bool:
    from locker.runtime.lxc import host_uses_cgroup2

    return host_uses_cgroup2()


def _read_host_resolv() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


@dataclass
class Context:
    """``state`` None: no host state (unit tests of one project alone).
    ``firewall_name``/``link_name``: the selected backends, as the host
    state records them."""

    project: Project
    manager: pluggy.PluginManager
    runtime: Runtime
    say: Callable[[str], None] = _stderr
    warn: Callable[[str], None] = _stderr
    lock: Callable[[], AbstractContextManager] = host_lock
    project_lock: Callable[[str], AbstractContextManager] = project_lock
    host_resolv: Callable[[], str] = _read_host_resolv
    ip_forwarding_off: Callable[[], bool] = _ip_forwarding_off  # what a dry run asks
    ra_interfaces: Callable[[], list[str]] = _ra_interfaces  # accept_ra=1 (IPv6 projects)
    foreign_dnats: Callable[[], list] = _foreign_dnats  # other tools' port forwards
    cgroup2: Callable[[], bool] = _host_uses_cgroup2  # the host's cgroup version
    host_hosts: Path = field(default_factory=lambda: Path("/etc/hosts"))
    journal: Journal = field(default_factory=Journal)
    state: HostState | None = None
    firewall_name: str | None = None
    link_name: str | None = None
    lxcpath: str | None = None
    pool: IPv4Network | None = None
    parallel: int = 1  # containers acted on at once
    dns: DnsForwarder | None = None  # the project's DNS forwarder; None: turned off
    isolated_default: bool = False  # the host file's ``isolated:``
    ipv6_default: bool = False  # the host file's ``ipv6:``
    ipv6_prefix: IPv6Network | None = None  # the host file's ``ipv6_prefix:``
    ipv6_nat: bool = True  # the host file's ``ipv6_nat:``

    def __post_init__(self) -> None:
        if self.journal.report is None:
            self.journal.report = self.say

    def record_now(self) -> ProjectRecord:
        """The project's record as the host state has it, or a new one."""
        record = self.state.load(self.project.name) if self.state else None
        return record or ProjectRecord(self.project.name, str(self.project.path.resolve()),
                                       lxcpath=self.lxcpath, bridge=self.bridge_name)

    def remember(self, **changes) -> None:
        """Update the project's record (call it under the host lock)."""
        if self.state is None:
            return
        record = self.record_now().with_changes(
            file=str(self.project.path.resolve()), lxcpath=self.lxcpath, **changes)
        self.state.save(record)

    def others(self) -> list[ProjectRecord]:
        """The host state's records of the other projects."""
        return list(self.state.others(self.project.name)) if self.state else []

    def forget(self) -> None:
        if self.state is not None:
            self.state.delete(self.project.name)

    @property
    def hooks(self):
        return self.manager.hook

    @property
    def bridge_name(self) -> str:
        return names.bridge_name(self.project.name)

    @property
    def isolated(self) -> bool:
        """Whether the project is isolated: its file's ``isolated:``, else
        the host file's default."""
        return self.isolated_default if self.project.isolated is None else self.project.isolated

    @property
    def ipv6(self) -> bool:
        """Whether the project has IPv6: its file's ``ipv6:``, else the host
        file's default."""
        return self.ipv6_default if self.project.ipv6 is None else self.project.ipv6

    def host_prefix(self) -> IPv6Network:
        """The host's ULA /48: the host file's ``ipv6_prefix``, else the
        state directory's ``host-id`` (made on first use)."""
        if self.ipv6_prefix is None:
            if self.state is None:
                raise ConfigError("The project has IPv6 but there is no host state to keep "
                                  "the host's IPv6 prefix in; set ipv6_prefix in the host file.")
            self.ipv6_prefix = self.state.host_prefix()
        return self.ipv6_prefix

    def bridge(self, network: IPv4Network) -> Bridge:
        """The project's bridge value on ``network`` (with its /64 when the
        project has IPv6)."""
        network6 = ipv6.project_network(self.host_prefix(), network) if self.ipv6 else None
        return Bridge(self.project.name, self.bridge_name, network, self.isolated,
                      network6, self.ipv6_nat)

    def lxc(self, container: str) -> str:
        return names.lxc_name(self.project.name, container)

    def select(self, requested: Iterable[str]) -> tuple[str, ...]:
        """The containers a command works on, in the project file's order:
        those named on the command line, or all."""
        requested = list(requested)
        known = self.project.container_names
        unknown = [name for name in requested if name not in known]
        if unknown:
            raise ConfigError(
                f"{', '.join(unknown)}: no such container in {self.project.path}. "
                f"Its containers are: {', '.join(known)}.")
        return tuple(n for n in known if not requested or n in requested)
