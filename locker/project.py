"""A project as the project file describes it, as plain frozen values.

``locker.projectfile`` reads and validates the YAML file into these; nothing
here touches the file system or the kernel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from locker.errors import Invalid
from locker.model import check_count, check_port, check_protocol, port_text
from locker.subnets import DEFAULT_POOL

#: Characters that break a line or a config file: C0 and C1 controls and
#: the Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: A cgroup controller file as LXC takes it after ``lxc.cgroup[2].``:
#: ``memory.max``, ``cpu.shares``, ``memory.limit_in_bytes``.
CGROUP_KEY = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")
_WHITESPACE = re.compile(r"\s")
_DOTDOT = {"HOST_DIR": "hides which directory is shared",
           "CONTAINER_DIR": "could leave the container's root file system"}


@dataclass(frozen=True)
class PortSpec:
    """``[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]``, or with ranges
    ``START-END:START-END``: ``count`` ports from each start. HOST_IP IPv6
    in brackets (``[2001:db8::1]:8080:80``), for projects with IPv6 only."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: IPv4Address | IPv6Address | None = None
    count: int = 1

    def __post_init__(self) -> None:
        check_port(self.host_port, "HOST_PORT")
        check_port(self.container_port, "CONTAINER_PORT")
        check_count(self.count, self.host_port, self.container_port)
        check_protocol(self.protocol)

    @property
    def host_end(self) -> int:
        return self.host_port + self.count - 1

    @property
    def host_ports(self) -> str:
        """``8080`` or ``8000-8010``."""
        return port_text(self.host_port, self.count)

    def clashes_with(self, other: PortSpec) -> bool:
        """Overlapping host ports, same protocol, on an address both would
        listen on."""
        return (self.host_port <= other.host_end and other.host_port <= self.host_end
                and self.protocol == other.protocol
                and (self.host_ip is None or other.host_ip is None
                     or self.host_ip == other.host_ip))


@dataclass(frozen=True)
class LinkSpec:
    """``NAME[:ALIAS]``: NAME is a container of the same project."""

    name: str
    alias: str | None = None


@dataclass(frozen=True)
class VolumeSpec:
    """``HOST_DIR:CONTAINER_DIR`` with ``$project``, ``$name``, ``$fqdn``
    already replaced. Made only valid (else ``Invalid``): both paths
    absolute, without ``..``, whitespace or control characters (an LXC mount
    entry separates its fields by spaces), the container's directory not
    its root."""

    host_dir: str
    container_dir: str

    def __post_init__(self) -> None:
        for what, path in (("HOST_DIR", self.host_dir), ("CONTAINER_DIR", self.container_dir)):
            if not path.startswith("/"):
                raise Invalid(f'{what} "{path}" is not an absolute path; start it with /')
            if _WHITESPACE.search(path) or CONTROL.search(path):
                raise Invalid(f'{what} "{path}" contains whitespace or control characters, '
                              "which LXC mount entries cannot hold; rename the directory")
            if ".." in path.split("/"):
                raise Invalid(f'{what} "{path}" contains "..", which {_DOTDOT[what]}; '
                              "give a plain absolute path")
        if not any(part not in ("", ".") for part in self.container_dir.split("/")):
            raise Invalid(f'CONTAINER_DIR "{self.container_dir}" is the container\'s root '
                          "directory, which cannot be mounted over; give a directory inside it")


@dataclass(frozen=True)
class CgroupSetting:
    """``KEY=VALUE`` as it goes into an LXC config line
    (``lxc.cgroup[2].KEY = VALUE``). Made only valid (else ``Invalid``):
    a controller file name, and a value on one line."""

    key: str
    value: str

    def __post_init__(self) -> None:
        if not CGROUP_KEY.fullmatch(self.key):
            raise Invalid(f'"{self.key}" is not a cgroup key; give a controller file name in '
                          "lower case like memory.max or cpu.shares")
        if not self.value.strip() or CONTROL.search(self.value):
            raise Invalid(f"the value of {self.key} is empty or holds control characters; "
                          "give it on one line")

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class TemplateSource:
    """``template: {name: T, ARG: VALUE, ...}``: run LXC template T with
    ``--ARG VALUE`` for each other key."""

    name: str
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CloneSource:
    """``clone: OTHER``: copy an existing container. OTHER names a container
    of this project, or else any LXC container in the lxcpath."""

    name: str


@dataclass(frozen=True)
class DownloadSource:
    """``download: {dist, release, arch}``: LXC's download template."""

    dist: str
    release: str
    arch: str
    variant: str | None = None


Source = TemplateSource | CloneSource | DownloadSource


@dataclass(frozen=True)
class ContainerSpec:
    """One container of the project, with the ``defaults`` already merged
    in (a container's own keys win)."""

    name: str
    source: Source | None = None
    ports: tuple[PortSpec, ...] = ()
    links: tuple[LinkSpec, ...] = ()
    fqdn: str | None = None
    dns: tuple[str, ...] = ()
    volumes: tuple[VolumeSpec, ...] = ()
    cgroup: tuple[CgroupSetting, ...] = ()


@dataclass(frozen=True)
class Project:
    """``isolated``, ``ipv6``: the project file's ``isolated:`` and
    ``ipv6:`` keys, None when the file does not set them (the host file's
    default applies)."""

    name: str
    path: Path
    containers: tuple[ContainerSpec, ...]
    isolated: bool | None = None
    ipv6: bool | None = None

    def container(self, name: str) -> ContainerSpec:
        for spec in self.containers:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def container_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.containers)


@dataclass(frozen=True)
class Setting:
    """One backend setting of the host file, as written, and where
    (``FILE:LINE: backends.NAME.KEY``), for the backend to check."""

    value: str
    where: str


@dataclass(frozen=True)
class HostConfig:
    """The host file: which backends this host uses, where containers
    live, and the pool of project subnets. None means "not set here"."""

    path: Path | None = None
    firewall: str | None = None
    link: str | None = None
    lxcpath: str | None = None
    state_dir: str | None = None
    subnets: IPv4Network | None = None
    backends: Mapping[str, Mapping[str, Setting]] = field(default_factory=dict)
    dns_forwarder: bool = True
    isolated: bool = False  # the default of the projects' ``isolated:`` key
    ipv6: bool = False  # the default of the projects' ``ipv6:`` key
    ipv6_prefix: IPv6Network | None = None  # None: the state directory's host-id
    ipv6_nat: bool = True  # False: the projects' /64s are routed, not masqueraded

    @property
    def pool(self) -> IPv4Network:
        """The pool to pass to ``allocate_subnet``: ``subnets`` or the
        default pool."""
        return self.subnets or DEFAULT_POOL
