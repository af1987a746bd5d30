"""The host state: what Locker made for each project on this host.

One JSON record per project in ``<state dir>/projects/<project>.json``; the
state directory is ``$LOCKER_STATE_DIR``, else the host file's
``state_dir``, else ``/var/lib/locker``. A record (format version 1)::

    {
      "version": 1,
      "project": "demo",
      "file": "/srv/demo/locker.yaml",          # absolute path of the project file
      "lxcpath": "/var/lib/lxc",                # null: LXC's default
      "bridge": {"name": "locker_demo", "subnet": "10.1.1.0/24",
                 "creating": false},            # true: creation begun, not finished
      "backends": {"firewall": "nftables", "link": "netlink"},  # null: no rules/bridge
      "containers": {"web": {"address": "10.1.1.2/24"}},
      "forwards": [{"container": "web", "host_ip": null, "host_port": 8080,
                    "protocol": "tcp", "container_ip": "10.1.1.2",
                    "container_port": 80}]      # the forwards Locker applied
                                                # ("count": N for a range of N ports)
    }

The state directory also holds ``host-id``: the host's IPv6 ULA prefix
(``fdXX:XXXX:XXXX::/48``, RFC 4193, from 40 random bits; see
``locker.ipv6``), written once, atomically, mode 0644, by the first command
that needs it (``HostState.host_prefix``), and the same ever after.

Records are memory, not a cache: ``status`` always reads the kernel and the
containers. They tell one project about the others (host ports in use,
subnets reserved, which backend made a project's rules) and let ``ls`` and
``restore`` find every project. Every write replaces the file atomically
(temporary file, fsync, rename) and happens under the host lock. A record
that cannot be read is reported and treated as missing, so that the
command rebuilds it from the kernel and the containers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Interface, IPv4Network, IPv6Network, ip_address
from pathlib import Path

from locker import ipv6
from locker.errors import Invalid, LockerError
from locker.model import Forward
from locker.names import is_valid_name

VERSION = 1
HOST_ID = "host-id"
DEFAULT_DIR = Path("/var/lib/locker")
ENVIRONMENT_VARIABLE = "LOCKER_STATE_DIR"


def state_dir(host_value: str | None = None,
              environ: Mapping[str, str] = os.environ) -> Path:
    """``$LOCKER_STATE_DIR``, else the host file's ``state_dir``, else the default."""
    return Path(environ.get(ENVIRONMENT_VARIABLE) or host_value or DEFAULT_DIR)


@dataclass(frozen=True)
class ProjectRecord:
    project: str
    file: str
    lxcpath: str | None = None
    bridge: str | None = None
    subnet: IPv4Network | None = None
    creating_bridge: bool = False
    firewall: str | None = None
    link: str | None = None
    containers: Mapping[str, IPv4Interface | None] = field(default_factory=dict)
    forwards: tuple[Forward, ...] = ()

    def with_changes(self, **changes) -> ProjectRecord:
        return replace(self, **changes)


class HostState:
    """The records under one state directory. ``warn`` hears of records
    that cannot be read."""

    def __init__(self, directory: Path, warn: Callable[[str], None]) -> None:
        self.directory = directory
        self.warn = warn

    @property
    def projects_dir(self) -> Path:
        return self.directory / "projects"

    def path(self, project: str) -> Path:
        return self.projects_dir / f"{project}.json"

    def load(self, project: str) -> ProjectRecord | None:
        """The project's record; None when there is none or it is corrupt
        (then with a warning: the caller rebuilds it)."""
        path = self.path(project)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.warn(f"Cannot read the host state {path} ({exc.strerror}); "
                      f"rebuilding it from the kernel and the containers.")
            return None
        try:
            record = decode(json.loads(text))
            if record.project != project:
                raise ValueError(f"it names project {record.project!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.warn(f"The host state {path} is corrupt ({exc}); rebuilding it from "
                      f"the kernel and the containers.")
            return None
        return record

    def all(self) -> list[ProjectRecord]:
        """Every readable record, by project name."""
        try:
            names = sorted(p.stem for p in self.projects_dir.glob("*.json"))
        except OSError:
            return []
        return [r for r in (self.load(n) for n in names if is_valid_name(n)) if r is not None]

    def others(self, project: str) -> Iterator[ProjectRecord]:
        return (r for r in self.all() if r.project != project)

    def save(self, record: ProjectRecord) -> None:
        """Replace the record atomically. Call it under the host lock."""
        path = self.path(record.project)
        try:
            self.projects_dir.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.projects_dir, prefix=".tmp-")
            try:
                with os.fdopen(fd, "w") as stream:
                    json.dump(encode(record), stream, indent=2, sort_keys=True)
                    stream.write("\n")
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            raise LockerError(f"Cannot write the host state {path}: {exc.strerror}. Run "
                              f"locker as root, or set {ENVIRONMENT_VARIABLE}.") from exc

    def host_prefix(self) -> IPv6Network:
        """The host's IPv6 ULA /48 from ``host-id``, made on first use: a
        random one is written to a temporary file and linked into place,
        so that of two commands making it at once one wins and both use
        its prefix. An unreadable or corrupt file is an error (not
        replaced: the projects' addresses depend on it)."""
        path = self.directory / HOST_ID
        try:
            return self._read_prefix(path)
        except FileNotFoundError:
            pass
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "w") as stream:
                    stream.write(f"{ipv6.random_prefix()}\n")
                    stream.flush()
                    os.fsync(stream.fileno())
                os.chmod(temporary, 0o644)
                with suppress(FileExistsError):
                    os.link(temporary, path)
            finally:
                with suppress(OSError):
                    os.unlink(temporary)
            return self._read_prefix(path)
        except OSError as exc:
            raise LockerError(f"Cannot write the host's IPv6 prefix {path}: {exc.strerror}. "
                              f"Run locker as root, set {ENVIRONMENT_VARIABLE}, or give "
                              "ipv6_prefix in the host file.") from exc

    @staticmethod
    def _read_prefix(path: Path) -> IPv6Network:
        text = path.read_text()
        try:
            return ipv6.parse_prefix(text)
        except Invalid as exc:
            raise LockerError(f"{path}: {text.strip()!r} {exc}. It holds the host's IPv6 "
                              "prefix; restore it, or remove it to get a new one (the "
                              "projects' IPv6 addresses change then).") from None

    def delete(self, project: str) -> None:
        try:
            self.path(project).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LockerError(f"Cannot remove the host state {self.path(project)}: "
                              f"{exc.strerror}.") from exc


# ------------------------------------------------------------ JSON format

def encode(record: ProjectRecord) -> dict:
    return {
        "version": VERSION,
        "project": record.project,
        "file": record.file,
        "lxcpath": record.lxcpath,
        "bridge": {"name": record.bridge,
                   "subnet": str(record.subnet) if record.subnet else None,
                   "creating": record.creating_bridge},
        "backends": {"firewall": record.firewall, "link": record.link},
        "containers": {name: {"address": str(address) if address else None}
                       for name, address in sorted(record.containers.items())},
        "forwards": [{
            "container": f.container, "host_ip": str(f.host_ip) if f.host_ip else None,
            "host_port": f.host_port, "protocol": f.protocol,
            "container_ip": str(f.container_ip), "container_port": f.container_port,
            **({"count": f.count} if f.count != 1 else {}),
        } for f in sorted(record.forwards, key=Forward.sort_key)],
    }


def decode(data: dict) -> ProjectRecord:
    if data.get("version") != VERSION:
        raise ValueError(f"format version {data.get('version')!r}, this Locker reads {VERSION}")
    project = data["project"]
    if not isinstance(project, str) or not is_valid_name(project):
        raise ValueError(f"project name {project!r}")
    bridge, backends = data["bridge"], data["backends"]
    return ProjectRecord(
        project=project,
        file=_text(data["file"]),
        lxcpath=_optional_text(data.get("lxcpath")),
        bridge=_optional_text(bridge.get("name")),
        subnet=IPv4Network(bridge["subnet"]) if bridge.get("subnet") else None,
        creating_bridge=bool(bridge.get("creating", False)),
        firewall=_optional_text(backends.get("firewall")),
        link=_optional_text(backends.get("link")),
        containers={_text(name): IPv4Interface(c["address"]) if c.get("address") else None
                    for name, c in data.get("containers", {}).items()},
        forwards=tuple(Forward(
            project, _text(f["container"]), int(f["host_port"]),
            ip_address(f["container_ip"]), int(f["container_port"]), _text(f["protocol"]),
            ip_address(f["host_ip"]) if f.get("host_ip") else None, int(f.get("count", 1)))
            for f in data.get("forwards", [])),
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)
