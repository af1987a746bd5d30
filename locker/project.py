"""A project as the project file describes it, as plain frozen values.

``locker.projectfile`` reads and validates the YAML file into these; nothing
here touches the file system or the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from locker.subnets import DEFAULT_POOL


@dataclass(frozen=True)
class PortSpec:
    """``[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]``."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: IPv4Address | None = None

    def clashes_with(self, other: PortSpec) -> bool:
        """Same port and protocol on an address both would listen on."""
        return (self.host_port == other.host_port and self.protocol == other.protocol
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
    already replaced."""

    host_dir: str
    container_dir: str


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
    cgroup: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Project:
    """``isolated``: the project file's ``isolated:`` key, None when the
    file does not set it (the host file's default applies)."""

    name: str
    path: Path
    containers: tuple[ContainerSpec, ...]
    isolated: bool | None = None

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

    @property
    def pool(self) -> IPv4Network:
        """The pool to pass to ``allocate_subnet``: ``subnets`` or the
        default pool."""
        return self.subnets or DEFAULT_POOL
