"""The plain, frozen values that the core and the backends hand each other.

Hooks take and return only these types, never backend objects, so that a
backend can be tested on its own and the planner can compare what is wanted
with what is found by plain equality.

Each value checks itself when it is made: a Bridge, Forward or Link that
exists is valid (names as ``locker.names`` allows them, ports 1 to 65535,
protocols in ``PROTOCOLS``, IPv4 or IPv6 addresses, one family per value),
and making an invalid one
raises ``locker.errors.Invalid`` (a ValueError) saying what is wrong. This
is the one place where these values are validated: the project file's
grammar, the planner and every backend rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import (IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface,
                       IPv6Network)

from locker.errors import Invalid
from locker.names import IFNAME_MAX, is_valid_name

PROTOCOLS = ("tcp", "udp")
_IFNAME_FORBIDDEN = frozenset("/:") | frozenset(chr(c) for c in range(33))


def check_port(port: object, what: str = "port") -> int:
    """``port`` when it is a port number (an int from 1 to 65535)."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise Invalid(f"{what} {port!r} is not a number; use a port from 1 to 65535")
    if not 1 <= port <= 65535:
        raise Invalid(f"{what} {port} is out of range; use a port from 1 to 65535")
    return port


def check_count(count: object, *starts: int) -> int:
    """``count`` when it is a number of ports (1 or more) such that the
    ranges from each of ``starts`` end at 65535 at the latest."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise Invalid(f"port count {count!r} is not a number of ports (1 or more)")
    for start in starts:
        if start + count - 1 > 65535:
            raise Invalid(f"port range {port_text(start, count)} ends after 65535; "
                          "use ports from 1 to 65535")
    return count


def port_text(start: int, count: int = 1) -> str:
    """``8000`` for one port, ``8000-8010`` for a range of 11."""
    return str(start) if count == 1 else f"{start}-{start + count - 1}"


def check_protocol(protocol: object) -> str:
    if protocol not in PROTOCOLS:
        raise Invalid(f"protocol {protocol!r} is not supported; use tcp or udp")
    return protocol  # type: ignore[return-value]


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not is_valid_name(name):
        raise Invalid(f"{what} {name!r} is not a valid Locker name")


Address = IPv4Address | IPv6Address


def _check_address(address: object, what: str) -> None:
    if not isinstance(address, (IPv4Address, IPv6Address)):
        raise Invalid(f"{what} {address!r} is not an IPv4Address or an IPv6Address")


def _check_family(what: str, *addresses: Address | None) -> None:
    """All given addresses (None skipped) of one family."""
    families = {a.version for a in addresses if a is not None}
    if len(families) > 1:
        raise Invalid(f"{what}: {', '.join(str(a) for a in addresses if a is not None)} "
                      "are not of the same family (IPv4 and IPv6 are separate values)")


def _bracketed(address: Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def _check_ifname(name: object) -> None:
    if (not isinstance(name, str) or not 0 < len(name.encode()) <= IFNAME_MAX
            or name in (".", "..") or any(c in _IFNAME_FORBIDDEN for c in name)):
        raise Invalid(f"bridge name {name!r} is not an interface name (1 to {IFNAME_MAX} "
                      "bytes, no whitespace, / or :)")


@dataclass(frozen=True)
class Bridge:
    """A project's bridge as Locker wants it: its name, its /24, and
    whether the project is isolated.

    The bridge holds the network's first address, which is every
    container's gateway. The value stands for the project's network rules
    (its "nat" value): masquerade, outbound, replies, deny, hairpin,
    localhost and guard, and, when ``isolated``, isolate (see
    ``locker.hookspecs.add_nat``). ``isolated`` True: the project's
    containers cannot open connections to the host's own addresses other
    than their gateway (project key ``isolated: true``, host-file default
    ``isolated:``).

    ``network6``: the project's IPv6 /64 when it has IPv6 (project key
    ``ipv6: true``, see ``locker.ipv6``), else None. The bridge then also
    holds ``gateway6`` (``::1``), and the nat value stands for the same
    rules in IPv6 too (masquerade of the /64 only when ``nat6``; no
    localhost and guard rules: IPv6 has no route_localnet). ``nat6``
    False: the /64 is routed, not masqueraded (host file ``ipv6_nat:
    false``); it means nothing without ``network6``.
    """

    project: str
    name: str
    network: IPv4Network
    isolated: bool = False
    network6: IPv6Network | None = None
    nat6: bool = True

    def __post_init__(self) -> None:
        _check_name(self.project, "project")
        _check_ifname(self.name)
        if not isinstance(self.network, IPv4Network):
            raise Invalid(f"bridge network {self.network!r} is not an IPv4Network")
        if not isinstance(self.isolated, bool):
            raise Invalid(f"bridge isolated {self.isolated!r} is not True or False")
        if self.network6 is not None and not (isinstance(self.network6, IPv6Network)
                                              and self.network6.prefixlen == 64):
            raise Invalid(f"bridge network6 {self.network6!r} is not an IPv6Network /64")
        if not isinstance(self.nat6, bool):
            raise Invalid(f"bridge nat6 {self.nat6!r} is not True or False")

    @property
    def gateway(self) -> IPv4Address:
        return self.network[1]

    @property
    def interface(self) -> IPv4Interface:
        return IPv4Interface(f"{self.gateway}/{self.network.prefixlen}")

    @property
    def gateway6(self) -> IPv6Address | None:
        """``::1`` of ``network6``, or None without IPv6."""
        return self.network6[1] if self.network6 is not None else None

    @property
    def interface6(self) -> IPv6Interface | None:
        """``gateway6`` with the /64, or None without IPv6."""
        return IPv6Interface((self.gateway6, 64)) if self.network6 is not None else None


@dataclass(frozen=True)
class BridgeState:
    """A bridge as the kernel has it.

    ``owned`` False: the bridge does not carry Locker's owner mark (its
    interface alias, ``locker.names.bridge_alias``), so another tool made
    it; Locker reports it but neither uses nor removes it.
    ``route_localnet`` False: ``net.ipv4.conf.NAME.route_localnet`` is off
    (a bridge of an older Locker), so ``start`` calls ``ensure_bridge``
    again; not compared. ``addresses6``: its global IPv6 addresses; a
    bridge of a project with IPv6 that lacks ``Bridge.interface6`` gets
    ``ensure_bridge`` again; not compared.
    """

    name: str
    addresses: tuple[IPv4Interface, ...]
    up: bool
    owned: bool = True
    route_localnet: bool = field(default=True, compare=False)
    #: the bridge's global IPv6 addresses (not link-local); not compared
    addresses6: tuple[IPv6Interface, ...] = field(default=(), compare=False)

    @property
    def network(self) -> IPv4Network | None:
        """The network of the bridge's first IPv4 address, if it has one."""
        return self.addresses[0].network if self.addresses else None


@dataclass(frozen=True)
class Forward:
    """One port forward: traffic from outside to HOST_IP:HOST_PORT/PROTOCOL
    goes to CONTAINER_IP:CONTAINER_PORT. ``host_ip`` None means every local
    address of the family of ``container_ip``. IPv4 or IPv6: ``host_ip`` and
    ``container_ip`` are of one family (a forward without HOST_IP in a
    project with IPv6 is two values, one per family). ``count`` consecutive
    ports make a range: host ports ``host_port`` to ``host_end`` go to
    container ports ``container_port`` to ``container_end``, in order."""

    project: str
    container: str
    host_port: int
    container_ip: Address
    container_port: int
    protocol: str = "tcp"
    host_ip: Address | None = None
    count: int = 1

    def __post_init__(self) -> None:
        _check_name(self.project, "project")
        _check_name(self.container, "container")
        check_port(self.host_port, "host port")
        check_port(self.container_port, "container port")
        check_count(self.count, self.host_port, self.container_port)
        check_protocol(self.protocol)
        _check_address(self.container_ip, "container address")
        if self.host_ip is not None:
            _check_address(self.host_ip, "host address")
        _check_family("forward", self.host_ip, self.container_ip)

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.container_ip.version

    @property
    def host_end(self) -> int:
        return self.host_port + self.count - 1

    @property
    def container_end(self) -> int:
        return self.container_port + self.count - 1

    def sort_key(self) -> tuple:
        return (self.project, self.container, self.protocol, self.host_port, self.family,
                int(self.host_ip or 0), int(self.container_ip), self.container_port,
                self.count)

    def __str__(self) -> str:
        host = f"{_bracketed(self.host_ip)}:" if self.host_ip else ""
        return (f"{host}{port_text(self.host_port, self.count)}/{self.protocol} -> "
                f"{_bracketed(self.container_ip)}:{port_text(self.container_port, self.count)}")


@dataclass(frozen=True)
class Link:
    """A link from ``container`` to ``peer`` of the same project: traffic
    between the two addresses is accepted in both directions. The link is
    owned by ``container`` (the one that names the peer in its ``links``).
    Both addresses are of one family: in a project with IPv6 a link is two
    values, one per family."""

    project: str
    container: str
    container_ip: Address
    peer: str
    peer_ip: Address

    def __post_init__(self) -> None:
        _check_name(self.project, "project")
        _check_name(self.container, "container")
        _check_name(self.peer, "peer")
        _check_address(self.container_ip, "container address")
        _check_address(self.peer_ip, "peer address")
        _check_family("link", self.container_ip, self.peer_ip)

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.container_ip.version

    def sort_key(self) -> tuple:
        return (self.project, self.container, self.peer, self.family,
                int(self.container_ip), int(self.peer_ip))

    def __str__(self) -> str:
        return f"{self.container} ({self.container_ip}) <-> {self.peer} ({self.peer_ip})"


@dataclass(frozen=True)
class TaggedRule:
    """A rule in the kernel that carries a Locker tag for ``project`` but is
    not a rule Locker would write: it cannot be read back into a value (its
    matches or its verdict were changed), or the rule Locker would write
    for the value it reads as differs from it (another tag, another
    chain). The repair removes it (``remove_unrecognised``). A changed rule
    that still reads back into some value exactly is not unrecognised: it
    counts for that value (see ``Ruleset``).

    ``location`` says where it is (``"ip locker LOCKER_FORWARD"``), ``text``
    shows the rule as the backend's own tools would (``"tcp dport 8080 dnat
    to 10.1.1.2:81"``); both are for people, not for parsing.
    """

    project: str
    comment: str
    location: str
    text: str


@dataclass(frozen=True)
class Blocker:
    """Something outside Locker's rules that drops the traffic Locker
    accepts: another table's forward chain with policy drop, the FORWARD
    policy of the iptables store Locker does not use, a running firewalld.

    ``what`` names it in one phrase (where, whose traffic, why); ``fix`` is
    the shell command that lets the bridge's traffic through there, both
    directions (from the bridge, and to it: DNATed connections and
    replies), such that after it ran the same thing is no longer reported.
    See ``locker.blockers`` for what counts as accepting a bridge.
    """

    what: str
    fix: str


Value = Bridge | Forward | Link

#: The network of a partial nat value whose masquerade and hairpin rules
#: are missing: the other network rules (outbound, replies, deny, localhost,
#: guard, isolate) name only the bridge (and the gateway), so the network
#: cannot be rebuilt from them.
UNKNOWN_NETWORK = IPv4Network("0.0.0.0/32")


@dataclass(frozen=True)
class Ruleset:
    """The rules carrying Locker's comments that a firewall backend found in
    the kernel.

    ``nat`` holds one Bridge per project whose network rules (masquerade,
    outbound, replies, deny, hairpin, localhost, guard; isolate when the
    Bridge is ``isolated``) are all there; ``isolated`` is read back from
    whether the isolate rule is there. ``forwards`` and ``links`` the
    values whose every rule is there. ``partial`` holds the values of
    which some rules are there and some are missing (a DNAT without its
    accept, one direction of a link, a masquerade without the outbound
    accept, a network of the previous layout without its deny rule).

    Each rule is read back into the value it was made for, so a rule whose
    matches were changed but still parse (a DNAT to another port) counts
    for another value: it shows as two partial values, the altered rule's
    and the one whose rule it replaced. A partial Bridge is rebuilt from a
    project's pieces (``locker.pieces.nat_bridges``): the masquerade or
    hairpin gives the network, the rules that name the bridge (outbound,
    replies, deny, localhost, guard, isolate) its name
    (``locker.names.bridge_name(project)`` when none is there); without a
    masquerade or hairpin the network is ``UNKNOWN_NETWORK``, so such a
    value never equals a wanted bridge: the repair removes it
    (``remove_nat``) and adds the wanted one.

    ``unrecognised`` holds the rules with Locker's tag that are not what
    Locker would write (see ``TaggedRule``), in the kernel's order.

    ``jumps`` is True when Locker's chains and exactly one jump into each
    are there; when some are and some are not, ``entry_missing`` names each
    missing chain or jump in a short phrase (``"jump from PREROUTING to
    LOCKER_PREROUTING"``, ``"chain LOCKER_FORWARD in table filter"``), and
    also each duplicate jump (``"1 duplicate jump(s) from FORWARD to
    LOCKER_FORWARD"``) and each rule carrying the jump comment that is not
    a jump Locker writes: whenever ``jumps`` is False but something of
    Locker's is there, ``entry_missing`` says why. Nothing of Locker's at
    all: ``jumps`` False and ``entry_missing`` empty.
    """

    nat: frozenset[Bridge] = frozenset()
    forwards: frozenset[Forward] = frozenset()
    links: frozenset[Link] = frozenset()
    jumps: bool = False
    partial: frozenset[Value] = frozenset()
    unrecognised: tuple[TaggedRule, ...] = ()
    entry_missing: tuple[str, ...] = ()

    def of_project(self, project: str) -> Ruleset:
        return Ruleset(
            nat=frozenset(b for b in self.nat if b.project == project),
            forwards=frozenset(f for f in self.forwards if f.project == project),
            links=frozenset(k for k in self.links if k.project == project),
            jumps=self.jumps,
            partial=frozenset(v for v in self.partial if v.project == project),
            unrecognised=tuple(r for r in self.unrecognised if r.project == project),
            entry_missing=self.entry_missing,
        )


@dataclass(frozen=True)
class Availability:
    """A backend's answer to "can you work on this host?".

    ``reason`` is one sentence an administrator can act on. ``auto`` False
    keeps auto-detection from picking a backend that works but should not
    be the default here; ``warning`` is said once when such a backend is
    chosen explicitly.
    """

    usable: bool
    reason: str
    auto: bool = True
    warning: str | None = None
    details: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
