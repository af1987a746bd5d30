"""Locker's iptables rules as plain values, and back.

A ``Spec`` describes one rule the way this backend writes it: table, chain,
matches, target and comment. Locker's values (bridges, forwards, links)
turn into specs here, and the specs read back from the kernel turn into
values again; nothing in this module touches the kernel or imports iptc.

Rules (``iptables -S`` notation)::

    nat    PREROUTING          -m addrtype --dst-type LOCAL -m comment --comment LOCKER -j LOCKER_PREROUTING
    nat    POSTROUTING         -m comment --comment LOCKER -j LOCKER_POSTROUTING
    filter FORWARD             -m comment --comment LOCKER -j LOCKER_FORWARD
    nat    LOCKER_POSTROUTING  -s NET ! -d NET -j MASQUERADE                          (masquerade)
    filter LOCKER_FORWARD      -i BR ! -o BR -j ACCEPT                                (outbound)
    filter LOCKER_FORWARD      -o BR -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT  (replies)
    nat    LOCKER_PREROUTING   -p P [-d HOST_IP] --dport HPORT -j DNAT --to-destination IP:PORT  (dnat)
    filter LOCKER_FORWARD      -d IP -p P --dport PORT -m conntrack --ctstate DNAT
                               [--ctorigdst HOST_IP] --ctorigdstport HPORT -j ACCEPT   (forward)
    filter LOCKER_FORWARD      -s A -d B -j ACCEPT / -s B -d A -j ACCEPT               (link, link-back)

Every rule but the jumps carries ``str(Tag(...))`` as its comment. A
forward's accept lets through only traffic its own DNAT translated, as the
nftables backend's ``ct status dnat ct original proto-dst`` does: one accept
per forward, never shared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from locker.errors import BackendError
from locker.model import PROTOCOLS, Bridge, Forward, Link, Ruleset
from locker.names import IFNAME_MAX, JUMP_COMMENT, Tag

NAT, FILTER = "nat", "filter"
PREROUTING, POSTROUTING, FORWARD = "LOCKER_PREROUTING", "LOCKER_POSTROUTING", "LOCKER_FORWARD"

#: Locker's chains per table, each with the built-in chain that jumps to it.
CHAINS: dict[str, dict[str, str]] = {
    NAT: {PREROUTING: "PREROUTING", POSTROUTING: "POSTROUTING"},
    FILTER: {FORWARD: "FORWARD"},
}
TABLES = (FILTER, NAT)

#: iptables keeps comments of up to 255 bytes plus the NUL; python-iptables
#: cuts longer ones silently.
COMMENT_MAX = 255
COMMENT_PATTERN = re.compile(r"[A-Za-z0-9:_-]+")
IFNAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
RELATED_ESTABLISHED = "RELATED,ESTABLISHED"
DNAT_STATE = "DNAT"


@dataclass(frozen=True)
class Spec:
    """One rule as this backend writes and reads it.

    Addresses are ``a.b.c.d/len``; an address or interface prefixed with
    ``!`` is inverted. ``dport`` implies the ``tcp``/``udp`` match of
    ``protocol``. ``ctstate``, ``ctorigdst`` (a bare address, the
    original destination) and ``ctorigdstport`` are the conntrack match.
    """

    table: str
    chain: str
    target: str
    comment: str
    protocol: str | None = None
    src: str | None = None
    dst: str | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    dport: int | None = None
    ctstate: str | None = None
    ctorigdst: str | None = None
    ctorigdstport: int | None = None
    dst_type: str | None = None
    to_destination: str | None = None

    @property
    def tag(self) -> Tag | None:
        return Tag.parse(self.comment)


def check_comment(comment: str) -> None:
    """Refuse a comment iptables would cut or that Locker could not read
    back, before anything is committed."""
    if not comment or COMMENT_PATTERN.fullmatch(comment) is None:
        raise BackendError(
            f"The rule comment {comment!r} holds characters outside [A-Za-z0-9:_-]; "
            "this is a bug in the caller: comments come from locker.names.Tag.")
    if len(comment.encode()) > COMMENT_MAX:
        raise BackendError(
            f"The rule comment {comment[:40]!r}... is {len(comment.encode())} bytes long and "
            f"iptables keeps only {COMMENT_MAX}; use shorter project or container names.")


def jump_specs() -> list[Spec]:
    """The three jumps into Locker's chains."""
    return [
        Spec(NAT, "PREROUTING", PREROUTING, JUMP_COMMENT, dst_type="LOCAL"),
        Spec(NAT, "POSTROUTING", POSTROUTING, JUMP_COMMENT),
        Spec(FILTER, "FORWARD", FORWARD, JUMP_COMMENT),
    ]


def _host(address: IPv4Address) -> str:
    return f"{address}/32"


def _tag(project: str, purpose: str, container: str | None = None,
         peer: str | None = None) -> str:
    try:
        return str(Tag(project, purpose, container, peer))
    except ValueError as err:
        raise BackendError(f"Cannot tag a rule: {err}; names are a letter, then "
                           "letters and digits, at most 32 characters.") from None


def _check_address(value: object, what: str) -> IPv4Address:
    if not isinstance(value, IPv4Address):
        raise BackendError(f"{what} {value!r} is not an IPv4 address.")
    return value


def _check_port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise BackendError(f"{what} {value!r} is not a port number from 1 to 65535.")
    return value


def nat_specs(bridge: Bridge) -> list[Spec]:
    """Masquerade, outbound and replies rules of a project's bridge."""
    name = bridge.name
    if not isinstance(name, str) or len(name) > IFNAME_MAX or not IFNAME_PATTERN.fullmatch(name):
        raise BackendError(f"Bridge name {name!r} is not a valid interface name "
                           f"(at most {IFNAME_MAX} of A-Z a-z 0-9 _ . -).")
    if not isinstance(bridge.network, IPv4Network):
        raise BackendError(f"Bridge network {bridge.network!r} is not an IPv4 network.")
    net = str(bridge.network)
    return [
        Spec(NAT, POSTROUTING, "MASQUERADE", _tag(bridge.project, "masquerade"),
             src=net, dst="!" + net),
        Spec(FILTER, FORWARD, "ACCEPT", _tag(bridge.project, "outbound"),
             in_iface=name, out_iface="!" + name),
        Spec(FILTER, FORWARD, "ACCEPT", _tag(bridge.project, "replies"),
             out_iface=name, ctstate=RELATED_ESTABLISHED),
    ]


def dnat_spec(forward: Forward) -> Spec:
    if forward.protocol not in PROTOCOLS:
        raise BackendError(f"Protocol {forward.protocol!r} of forward {forward.host_port} "
                           f"is not one of {', '.join(PROTOCOLS)}.")
    container_ip = _check_address(forward.container_ip, "Container address")
    host_ip = (None if forward.host_ip is None
               else _host(_check_address(forward.host_ip, "Host address")))
    return Spec(NAT, PREROUTING, "DNAT", _tag(forward.project, "dnat", forward.container),
                protocol=forward.protocol, dst=host_ip,
                dport=_check_port(forward.host_port, "Host port"),
                to_destination=f"{container_ip}:"
                               f"{_check_port(forward.container_port, 'Container port')}")


def accept_spec(forward: Forward) -> Spec:
    """The accept for the traffic this forward's DNAT translated (and no
    other traffic to the container's port)."""
    return Spec(FILTER, FORWARD, "ACCEPT", _tag(forward.project, "forward", forward.container),
                protocol=forward.protocol, dst=_host(forward.container_ip),
                dport=forward.container_port, ctstate=DNAT_STATE,
                ctorigdst=None if forward.host_ip is None else str(forward.host_ip),
                ctorigdstport=forward.host_port)


def former_accept_spec(forward: Forward) -> Spec:
    """The accept earlier versions wrote for a forward (any forwarded
    traffic to the container's port, shared by forwards to that port).
    Adding or removing the forward deletes it, so an upgraded host does not
    keep letting through what the forward no longer should."""
    return Spec(FILTER, FORWARD, "ACCEPT", _tag(forward.project, "forward", forward.container),
                protocol=forward.protocol, dst=_host(forward.container_ip),
                dport=forward.container_port)


def forward_specs(forward: Forward) -> list[Spec]:
    """The forward's DNAT and accept (checked: raises BackendError on bad
    values)."""
    return [dnat_spec(forward), accept_spec(forward)]


def link_specs(link: Link) -> list[Spec]:
    a = _host(_check_address(link.container_ip, "Container address"))
    b = _host(_check_address(link.peer_ip, "Peer address"))
    return [
        Spec(FILTER, FORWARD, "ACCEPT", _tag(link.project, "link", link.container, link.peer),
             src=a, dst=b),
        Spec(FILTER, FORWARD, "ACCEPT",
             _tag(link.project, "link-back", link.container, link.peer), src=b, dst=a),
    ]


def unique(specs: Iterable[Spec]) -> list[Spec]:
    """The specs in order, each once."""
    return list(dict.fromkeys(specs))


# ------------------------------------------------------------- reading back


def _bare_ip(text: str | None) -> IPv4Address | None:
    if text is None or text.startswith("!") or not text.endswith("/32"):
        return None
    return IPv4Address(text[:-3])


def _candidates(specs: Sequence[Spec]) -> tuple[set[Bridge], set[Forward], set[Link]]:
    """Values suggested by one rule each; ``ruleset`` keeps those whose
    every rule is present."""
    names: dict[str, set[str]] = {}
    networks: dict[str, set[IPv4Network]] = {}
    forwards: set[Forward] = set()
    links: set[Link] = set()
    for spec in specs:
        tag = spec.tag
        if tag is None:
            continue
        try:
            if tag.purpose == "masquerade" and spec.src:
                networks.setdefault(tag.project, set()).add(IPv4Network(spec.src))
            elif tag.purpose == "outbound" and spec.in_iface:
                names.setdefault(tag.project, set()).add(spec.in_iface)
            elif tag.purpose == "dnat" and tag.container and spec.to_destination:
                address, _, port = spec.to_destination.partition(":")
                forwards.add(Forward(tag.project, tag.container, spec.dport or 0,
                                     IPv4Address(address), int(port), spec.protocol or "",
                                     _bare_ip(spec.dst)))
            elif tag.purpose == "link" and tag.container and tag.peer:
                src, dst = _bare_ip(spec.src), _bare_ip(spec.dst)
                if src and dst:
                    links.add(Link(tag.project, tag.container, src, tag.peer, dst))
        except ValueError:
            continue
    bridges = {Bridge(project, name, network)
               for project in networks.keys() & names.keys()
               for name in names[project] for network in networks[project]}
    return bridges, forwards, links


def ruleset(specs: Sequence[Spec], jumps: bool) -> Ruleset:
    """The values whose rules are all among ``specs`` (Locker's chains as
    read from the kernel)."""
    present = set(specs)
    bridges, forwards, links = _candidates(specs)

    def complete(make, values):
        found = set()
        for value in values:
            try:
                if set(make(value)) <= present:
                    found.add(value)
            except BackendError:
                continue
        return frozenset(found)

    return Ruleset(nat=complete(nat_specs, bridges),
                   forwards=complete(forward_specs, forwards),
                   links=complete(link_specs, links), jumps=jumps)

