"""Pure functions from the project and the live facts to the network the
project must have, and to the changes that get it there.

Nothing here touches the kernel, LXC or the file system.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Network, ip_address

from locker import ipv6
from locker.errors import ConfigError
from locker.project import PortSpec, Project

FIRST_HOST = 2
LAST_HOST = 254
HOSTS_MARK = "# locker"


def assign_addresses(names: Sequence[str], configured: Mapping[str, IPv4Interface | None],
                     network: IPv4Network) -> dict[str, IPv4Interface]:
    """An address in ``network`` for each container of ``names``.

    A container keeps the host part of the address it was configured with
    (so it keeps its address across restarts, and across a move of the
    bridge to another subnet); the others get the lowest free host part
    from .2 to .254, in the order of ``names``.
    """
    index: dict[str, int] = {}
    taken: set[int] = set()
    for name in names:
        old = configured.get(name)
        if old is None:
            continue
        host = int(old.ip) & 0xFF
        if FIRST_HOST <= host <= LAST_HOST and host not in taken:
            index[name] = host
            taken.add(host)
    free = (h for h in range(FIRST_HOST, LAST_HOST + 1) if h not in taken)
    for name in names:
        if name not in index:
            host = next(free, None)
            if host is None:
                raise ConfigError(
                    f"The container {name!r} gets no address: a project's /24 holds "
                    f"at most {LAST_HOST - FIRST_HOST + 1} containers. Split the "
                    f"project in two.")
            index[name] = host
    return {name: IPv4Interface((int(network.network_address) + index[name],
                                 network.prefixlen)) for name in names}


@dataclass(frozen=True)
class HostsEntry:
    address: IPv4Address | IPv6Address
    names: tuple[str, ...]

    def line(self, mark: str = HOSTS_MARK) -> str:
        return f"{self.address}\t{' '.join(self.names)}\t{mark}"


def hosts_entries(project: Project, container: str, addresses: Mapping[str, IPv4Address],
                  unlinked: Collection[str] = (),
                  network6: IPv6Network | None = None) -> list[HostsEntry]:
    """The lines Locker keeps in a container's /etc/hosts: its own fqdn, and
    for each link the peer's address, fqdn, name and alias; no link lines
    for links that start or end at a container of ``unlinked``. With
    ``network6`` (a project with IPv6) each line is followed by the same
    names on the IPv6 address (``locker.ipv6.container_address``)."""
    entries = _hosts_entries4(project, container, addresses, unlinked)
    if network6 is None:
        return entries
    return [e for entry in entries for e in (
        entry, HostsEntry(ipv6.container_address(network6, entry.address), entry.names))]


def _hosts_entries4(project: Project, container: str, addresses: Mapping[str, IPv4Address],
                    unlinked: Collection[str]) -> list[HostsEntry]:
    spec = project.container(container)
    entries = []
    if spec.fqdn and container in addresses:
        entries.append(HostsEntry(addresses[container], _unique(spec.fqdn, spec.fqdn.split(".")[0])))
    for link in spec.links if container not in unlinked else ():
        if link.name in addresses and link.name not in unlinked:
            peer = project.container(link.name)
            names = [n for n in (peer.fqdn, link.name, link.alias) if n]
            entries.append(HostsEntry(addresses[link.name], _unique(*names)))
    return entries


def host_entries(project: Project, addresses: Mapping[str, IPv4Address]) -> list[HostsEntry]:
    """The lines for the project's containers in the host's own /etc/hosts
    (``start --add-hosts``): each container's fqdn and ``NAME.PROJECT``."""
    return [HostsEntry(ip, _unique(*(n for n in (project.container(name).fqdn,
                                                 f"{name}.{project.name}") if n)))
            for name, ip in addresses.items()]


def host_hosts_mark(project: str) -> str:
    """What ends the project's lines in the host's /etc/hosts."""
    return f"{HOSTS_MARK}:{project}"


def _unique(*names: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def hosts_file(current: str | None, entries: Sequence[HostsEntry], mark: str = HOSTS_MARK,
               localhost: bool = True) -> str:
    """``current`` with every line ending in ``mark`` (the lines Locker
    wrote before) replaced by ``entries``; the other lines keep their
    content and order. ``localhost``: add a ``127.0.0.1 localhost`` line
    where there is none (a container's file; not the host's)."""
    kept = [line for line in (current or "").splitlines() if not line.endswith(mark)]
    if localhost and not any(line.split()[:1] == ["127.0.0.1"] for line in kept):
        kept.insert(0, "127.0.0.1\tlocalhost")
    return "\n".join(kept + [entry.line(mark) for entry in entries]) + "\n"


def parse_hosts_entries(text: str | None) -> list[HostsEntry]:
    """The lines Locker wrote into a hosts file, as found there."""
    entries = []
    for line in (text or "").splitlines():
        if line.endswith(HOSTS_MARK):
            fields = line[: -len(HOSTS_MARK)].split()
            try:
                entries.append(HostsEntry(ip_address(fields[0]), tuple(fields[1:])))
            except (ValueError, IndexError):
                continue
    return entries


def nameservers(dns: Sequence[str], bridge: IPv4Address, host_resolv: str) -> list[str]:
    """The container's nameservers in order: ``$bridge`` is the bridge's
    address, ``$copy`` the host's own nameservers except loopback ones."""
    servers: list[str] = []
    for item in dns:
        if item == "$bridge":
            servers.append(str(bridge))
        elif item == "$copy":
            servers.extend(_host_nameservers(host_resolv))
        else:
            servers.append(item)
    return list(dict.fromkeys(servers))


def _host_nameservers(resolv: str) -> list[str]:
    found = []
    for line in resolv.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                if not ip_address(fields[1]).is_loopback:
                    found.append(fields[1])
            except ValueError:
                continue
    return found


def resolv_conf(servers: Sequence[str]) -> str:
    return "".join(f"nameserver {server}\n" for server in servers)


def port_conflicts(project: Project, containers: Collection[str],
                   others: Iterable) -> list[str]:
    """Problems for each host port of ``containers`` that another project
    (``others``: its host-state records) forwards already. A forward
    without HOST_IP clashes with every address."""
    taken = [(record, forward) for record in others for forward in record.forwards]
    problems = []
    for spec in project.containers:
        if spec.name not in containers:
            continue
        for port in spec.ports:
            for record, forward in taken:
                theirs = PortSpec(forward.host_port, forward.container_port, forward.protocol,
                                  forward.host_ip, forward.count)
                if port.clashes_with(theirs):
                    where = f"{port.host_ip}:" if port.host_ip else ""
                    what = "it" if theirs.count == port.count == 1 else (
                        f"{theirs.host_ports}/{theirs.protocol}")
                    problems.append(
                        f"{project.path}: {spec.name}: port \"{where}{port.host_ports}/"
                        f"{port.protocol}\": project {record.project} ({record.file}) "
                        f"forwards {what} to its container {forward.container} already; "
                        f"choose other host ports, or stop that project first."
                        if what != "it" else
                        f"{project.path}: {spec.name}: port \"{where}{port.host_port}/"
                        f"{port.protocol}\": project {record.project} ({record.file}) "
                        f"forwards it to its container {forward.container} already; choose "
                        f"another host port, or stop that project first.")
                    break
    return problems
