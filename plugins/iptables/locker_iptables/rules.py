"""Locker's iptables rules as plain values, and back.

A ``Spec`` describes one rule the way this backend writes it: table, chain,
matches, target and comment. Locker's values (bridges, forwards, links)
turn into specs here, and the specs read back from the kernel turn into
values again; nothing in this module touches the kernel or imports iptc.

Rules (``iptables -S`` notation; ``FWD_P`` and ``PRE_P`` are project P's own
chains, ``fwd_chain(P)`` and ``pre_chain(P)``)::

    nat    PREROUTING          -m addrtype --dst-type LOCAL -m comment --comment LOCKER -j LOCKER_PREROUTING
    nat    POSTROUTING         -m comment --comment LOCKER -j LOCKER_POSTROUTING
    filter FORWARD             -m comment --comment LOCKER -j LOCKER_FORWARD
    nat    LOCKER_PREROUTING   -j PRE_P                                               (dispatch)
    filter LOCKER_FORWARD      -j FWD_P                                               (dispatch)
    nat    LOCKER_POSTROUTING  -s NET ! -d NET -j MASQUERADE                          (masquerade)
    filter FWD_P               -i BR ! -o BR -j ACCEPT                                (outbound)
    filter FWD_P               -o BR -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT  (replies)
    nat    PRE_P               -p P [-d HOST_IP] --dport HPORT -j DNAT --to-destination IP:PORT  (dnat)
    filter FWD_P               -d IP -p P --dport PORT -m conntrack --ctstate DNAT
                               [--ctorigdst HOST_IP] --ctorigdstport HPORT -j ACCEPT   (forward)
    (a range of ports: one rule each still, ``--dport HS:HE``, ``--to-destination
    IP:CS-CE/HS`` (the shifted port map: HS+i goes to CS+i), ``--dport CS:CE`` and
    ``--ctorigdstport HS:HE``)
    filter FWD_P               -s A -d B -j ACCEPT / -s B -d A -j ACCEPT               (link, link-back)

Every rule but the jumps carries ``str(Tag(...))`` as its comment. A
forward's accept lets through only traffic its own DNAT translated, as the
nftables backend's ``ct status dnat ct original proto-dst`` does: one accept
per forward, never shared.

IPv6 (a Bridge with ``network6``, forwards and links of IPv6 addresses):
the same rules in the ip6tables ``filter`` and ``nat`` tables (``FILTER6``,
``NAT6``), with the same chains, jumps and tags; no localhost and no guard
rule (IPv6 has no route_localnet), the nat ``OUTPUT`` jump skips ``::1``
(which no DNAT can send to a container), no masquerade when the /64 is
routed (``nat6`` False), and the isolate rule drops conntrack state NEW
only (neighbour discovery is untracked). Their keys have the purpose with ``6`` appended
(``locker.pieces.key_purpose``) where a value does not say the family.

The old layout (before per-project chains) had the project rules in
``LOCKER_FORWARD`` and ``LOCKER_PREROUTING`` themselves; ``parse_legacy``
still reads them, so that the next adding hook can move them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from locker.errors import BackendError
from locker.model import Bridge, Forward, Link, Ruleset, TaggedRule
from locker.names import IFNAME_MAX, JUMP_COMMENT, USER_CHAIN, Tag
from locker.pieces import key_purpose, nat_bridges, nat_doomed as nat_doomed_keys, tag_purpose

NAT, FILTER = "nat", "filter"
#: The ip6tables tables, as this backend names them (python-iptables'
#: ``Table6`` of ``BASE[table]``).
NAT6, FILTER6 = "nat6", "filter6"
FAMILY = {FILTER: 4, NAT: 4, FILTER6: 6, NAT6: 6}
BASE = {FILTER: FILTER, NAT: NAT, FILTER6: FILTER, NAT6: NAT}
FAMILY_TABLES = {4: (FILTER, NAT), 6: (FILTER6, NAT6)}
PREROUTING, POSTROUTING, FORWARD = "LOCKER_PREROUTING", "LOCKER_POSTROUTING", "LOCKER_FORWARD"
USER, ISOLATION, INPUT = USER_CHAIN, "LOCKER_ISOLATION", "LOCKER_INPUT"

#: Locker's shared chains per table (the entry points). LOCKER_USER is the
#: administrator's: created when missing, never read, changed or deleted.
ENTRY_CHAINS: dict[str, tuple[str, ...]] = {
    FILTER: (FORWARD, USER, ISOLATION, INPUT),
    NAT: (PREROUTING, POSTROUTING),
    FILTER6: (FORWARD, USER, ISOLATION, INPUT),
    NAT6: (PREROUTING, POSTROUTING),
}
#: Chains whose rules Locker never reads (nor reports, nor removes).
UNREAD_CHAINS = frozenset({USER})
LOOPBACK = "127.0.0.0/8"
LOOPBACK6 = "::1/128"
#: The order of the commits of one transaction.
TABLES = (FILTER, NAT, FILTER6, NAT6)

#: iptables chain names: at most 28 characters (XT_EXTENSION_MAXNAMELEN 29
#: with the NUL; ``iptables -N`` refuses longer ones).
CHAIN_MAX = 28
#: The prefix of each project's own chain, per table, and the shared chain
#: holding the dispatch rule into it.
PROJECT_PREFIX = {FILTER: "LOCKER_FWD_", NAT: "LOCKER_PRE_",
                  FILTER6: "LOCKER_FWD_", NAT6: "LOCKER_PRE_"}
DISPATCH_CHAIN = {FILTER: FORWARD, NAT: PREROUTING, FILTER6: FORWARD, NAT6: PREROUTING}

#: iptables keeps comments of up to 255 bytes plus the NUL; python-iptables
#: cuts longer ones silently.
COMMENT_MAX = 255
COMMENT_PATTERN = re.compile(r"[A-Za-z0-9:_-]+")
IFNAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
RELATED_ESTABLISHED = "RELATED,ESTABLISHED"
DNAT_STATE = "DNAT"
NOT_REPLY = "!" + RELATED_ESTABLISHED
NEW_STATE = "NEW"
NOT_REPLY_OR_DNAT = "!RELATED,ESTABLISHED,DNAT"


@dataclass(frozen=True)
class Spec:
    """One rule as this backend writes and reads it.

    Addresses are ``a.b.c.d/len``; an address, interface or ``ctstate``
    prefixed with ``!`` is inverted. ``dport`` implies the ``tcp``/``udp``
    match of ``protocol``; ``dport_last`` (and ``ctorigdstport_last``) make
    it a range (``dport_text``). ``ctstate``, ``ctorigdst`` (a bare address, the
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
    #: The last port of a range ``dport``..``dport_last`` (None: one port).
    dport_last: int | None = None
    ctorigdstport_last: int | None = None
    dst_type: str | None = None
    to_destination: str | None = None

    @property
    def tag(self) -> Tag | None:
        return Tag.parse(self.comment)

    @property
    def dport_text(self) -> str:
        """``--dport``'s value: ``8080`` or ``8000:8010``."""
        return port_range(self.dport, self.dport_last)

    @property
    def ctorigdstport_text(self) -> str:
        return port_range(self.ctorigdstport, self.ctorigdstport_last)


def port_range(first: int | None, last: int | None) -> str:
    """``8080``, or ``8000:8010`` for a range (iptables' notation)."""
    return str(first) if last is None else f"{first}:{last}"


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


def project_chain(table: str, project: str) -> str:
    """Project ``project``'s own chain in ``table``: ``LOCKER_FWD_<project>``
    (filter) or ``LOCKER_PRE_<project>`` (nat) when that fits in 28
    characters; otherwise the prefix, the project's first eight characters,
    ``_`` and the first eight hex digits of the SHA-256 of the project name
    (``LOCKER_FWD_averylon_1a2b3c4d``), as ``locker.names.bridge_name`` does.
    Project names hold no ``_``, so a short form never equals a plain one."""
    plain = PROJECT_PREFIX[table] + project
    if len(plain) <= CHAIN_MAX:
        return plain
    digest = hashlib.sha256(project.encode()).hexdigest()[:8]
    return f"{PROJECT_PREFIX[table]}{project[:8]}_{digest}"


def fwd_chain(project: str) -> str:
    return project_chain(FILTER, project)


def pre_chain(project: str) -> str:
    return project_chain(NAT, project)


def filter_table(family: int) -> str:
    return FILTER6 if family == 6 else FILTER


def nat_table(family: int) -> str:
    return NAT6 if family == 6 else NAT


def saver(table: str) -> str:
    """The command that lists the table's store, for people."""
    return f"ip6tables-legacy-save -t {BASE[table]}" if FAMILY[table] == 6 \
        else f"iptables-legacy-save -t {table}"


def table_label(table: str) -> str:
    """How messages name a table: ``nat``, ``ip6 nat``."""
    return f"ip6 {BASE[table]}" if FAMILY[table] == 6 else table


def dispatch_spec(table: str, project: str) -> Spec:
    """The rule of the shared chain that leads into the project's own chain."""
    return Spec(table, DISPATCH_CHAIN[table], project_chain(table, project),
                _tag(project, "dispatch"))


def jump_specs() -> list[Spec]:
    """The jumps into Locker's shared chains, in the order they are checked
    and inserted: each first in its built-in chain, and the jumps to
    LOCKER_USER and LOCKER_ISOLATION as the first two rules of
    LOCKER_FORWARD (``HEAD``)."""
    return _JUMPS


def _jumps(family: int) -> list[Spec]:
    nat, filter_ = nat_table(family), filter_table(family)
    # [::1] cannot be DNATed to a container (IPv6 has no route_localnet): it
    # keeps reaching the host's own sockets.
    local = "!" + LOOPBACK6 if family == 6 else None
    return [
        Spec(nat, "PREROUTING", PREROUTING, JUMP_COMMENT, dst_type="LOCAL"),
        Spec(nat, "OUTPUT", PREROUTING, JUMP_COMMENT, dst=local, dst_type="LOCAL"),
        Spec(nat, "POSTROUTING", POSTROUTING, JUMP_COMMENT),
        Spec(filter_, "FORWARD", FORWARD, JUMP_COMMENT),
        Spec(filter_, "INPUT", INPUT, JUMP_COMMENT),
        *HEADS[filter_],
    ]


#: The first rules of LOCKER_FORWARD, in this order: the administrator's
#: chain before any accept of Locker's, then every project's deny rule.
HEADS = {table: (Spec(table, FORWARD, USER, JUMP_COMMENT),
                 Spec(table, FORWARD, ISOLATION, JUMP_COMMENT)) for table in (FILTER, FILTER6)}
HEAD = HEADS[FILTER]
_JUMPS = _jumps(4) + _jumps(6)


def _host(address: IPv4Address | IPv6Address) -> str:
    return f"{address}/{address.max_prefixlen}"


def _tag(project: str, purpose: str, container: str | None = None,
         peer: str | None = None) -> str:
    try:
        return str(Tag(project, purpose, container, peer))
    except ValueError as err:
        raise BackendError(f"Cannot tag a rule: {err}; names are a letter, then "
                           "letters and digits, at most 32 characters.") from None


def masquerade_spec(project: str, network: IPv4Network | IPv6Network) -> Spec:
    return Spec(nat_table(network.version), POSTROUTING, "MASQUERADE", _tag(project, "masquerade"),
                src=str(network), dst="!" + str(network))


def hairpin_spec(project: str, network: IPv4Network | IPv6Network) -> Spec:
    """Masquerade of forwarded (DNATed) traffic from the subnet back into it:
    a container reaching a forward through a host address gets replies."""
    return Spec(nat_table(network.version), POSTROUTING, "MASQUERADE", _tag(project, "hairpin"),
                src=str(network), dst=str(network), ctstate=DNAT_STATE)


def localhost_spec(project: str, name: str) -> Spec:
    """Masquerade of loopback-sourced traffic leaving through the bridge: a
    forward reached at 127.0.0.1 from the host itself."""
    return Spec(NAT, POSTROUTING, "MASQUERADE", _tag(project, "localhost"),
                src=LOOPBACK, out_iface=_check_ifname(name))


def _check_ifname(name: object) -> str:
    if not isinstance(name, str) or len(name) > IFNAME_MAX or not IFNAME_PATTERN.fullmatch(name):
        raise BackendError(f"Bridge name {name!r} is not a valid interface name "
                           f"(at most {IFNAME_MAX} of A-Z a-z 0-9 _ . -).")
    return name


def outbound_spec(project: str, name: str, family: int = 4) -> Spec:
    name = _check_ifname(name)
    return Spec(filter_table(family), fwd_chain(project), "ACCEPT", _tag(project, "outbound"),
                in_iface=name, out_iface="!" + name)


def replies_spec(project: str, name: str, family: int = 4) -> Spec:
    return Spec(filter_table(family), fwd_chain(project), "ACCEPT", _tag(project, "replies"),
                out_iface=_check_ifname(name), ctstate=RELATED_ESTABLISHED)


def deny_spec(project: str, name: str, family: int = 4) -> Spec:
    """Drop new connections into the bridge from any other interface that
    were not DNATed (forwards) and are no replies (in LOCKER_ISOLATION,
    before every project's accepts)."""
    name = _check_ifname(name)
    return Spec(filter_table(family), ISOLATION, "DROP", _tag(project, "deny"),
                in_iface="!" + name, out_iface=name, ctstate=NOT_REPLY_OR_DNAT)


def guard_spec(project: str, name: str) -> Spec:
    """Drop connections from the bridge to 127.0.0.0/8 (CVE-2020-8558: the
    bridge has route_localnet on)."""
    return Spec(FILTER, INPUT, "DROP", _tag(project, "guard"),
                dst=LOOPBACK, in_iface=_check_ifname(name), ctstate=NOT_REPLY)


def isolate_spec(project: str, name: str, gateway: IPv4Address | IPv6Address) -> Spec:
    """Drop new connections from the bridge to the host's addresses other
    than the gateway (isolated projects). In IPv6 state NEW only: neighbour
    discovery goes to the host's link-local and multicast addresses and
    conntrack tracks none of it, so "not a reply" would drop it too."""
    return Spec(filter_table(gateway.version), INPUT, "DROP", _tag(project, "isolate"),
                dst="!" + _host(gateway), in_iface=_check_ifname(name),
                ctstate=NEW_STATE if gateway.version == 6 else NOT_REPLY)


def nat_specs(bridge: Bridge) -> list[Spec]:
    """Every network rule of a project's bridge (its nat value)."""
    project, name, network = bridge.project, _check_ifname(bridge.name), bridge.network
    specs = [masquerade_spec(project, network), hairpin_spec(project, network),
             localhost_spec(project, name), outbound_spec(project, name),
             replies_spec(project, name), deny_spec(project, name),
             guard_spec(project, name)]
    if bridge.isolated:
        specs.append(isolate_spec(project, name, bridge.gateway))
    if bridge.network6 is not None:
        network6 = bridge.network6
        if bridge.nat6:
            specs.append(masquerade_spec(project, network6))
        specs += [hairpin_spec(project, network6), outbound_spec(project, name, 6),
                  replies_spec(project, name, 6), deny_spec(project, name, 6)]
        if bridge.isolated:
            specs.append(isolate_spec(project, name, bridge.gateway6))
    return specs


def _endpoint(address: IPv4Address | IPv6Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _last(first: int, forward: Forward) -> int | None:
    return None if forward.count == 1 else first + forward.count - 1


def dnat_spec(forward: Forward) -> Spec:
    """The forward's DNAT; for a range the shifted port map
    ``IP:CS-CE/HS`` (host port HS+i to container port CS+i)."""
    host_ip = None if forward.host_ip is None else _host(forward.host_ip)
    destination = _endpoint(forward.container_ip, forward.container_port)
    if forward.count > 1:
        destination += f"-{forward.container_end}/{forward.host_port}"
    return Spec(nat_table(forward.container_ip.version), pre_chain(forward.project), "DNAT",
                _tag(forward.project, "dnat", forward.container),
                protocol=forward.protocol, dst=host_ip, dport=forward.host_port,
                dport_last=_last(forward.host_port, forward),
                to_destination=destination)


def accept_spec(forward: Forward) -> Spec:
    """The accept for the traffic this forward's DNAT translated (and no
    other traffic to the container's port)."""
    return Spec(filter_table(forward.container_ip.version), fwd_chain(forward.project), "ACCEPT",
                _tag(forward.project, "forward", forward.container),
                protocol=forward.protocol, dst=_host(forward.container_ip),
                dport=forward.container_port, ctstate=DNAT_STATE,
                ctorigdst=None if forward.host_ip is None else str(forward.host_ip),
                ctorigdstport=forward.host_port,
                dport_last=_last(forward.container_port, forward),
                ctorigdstport_last=_last(forward.host_port, forward))


def former_accept_spec(forward: Forward) -> Spec | None:
    """The accept earlier versions wrote for a forward (any forwarded
    traffic to the container's port, shared by forwards to that port), in
    the shared chain where they wrote it. Adding or removing the forward
    deletes it, so an upgraded host does not keep letting through what the
    forward no longer should. None for IPv6 (never written)."""
    if forward.container_ip.version == 6:
        return None
    return Spec(FILTER, FORWARD, "ACCEPT", _tag(forward.project, "forward", forward.container),
                protocol=forward.protocol, dst=_host(forward.container_ip),
                dport=forward.container_port, dport_last=_last(forward.container_port, forward))


def forward_specs(forward: Forward) -> list[Spec]:
    """The forward's DNAT and accept (the values check themselves when they
    are made: ``locker.model``)."""
    return [dnat_spec(forward), accept_spec(forward)]


def link_specs(link: Link) -> list[Spec]:
    a, b = _host(link.container_ip), _host(link.peer_ip)
    chain, table = fwd_chain(link.project), filter_table(link.container_ip.version)
    return [
        Spec(table, chain, "ACCEPT", _tag(link.project, "link", link.container, link.peer),
             src=a, dst=b),
        Spec(table, chain, "ACCEPT",
             _tag(link.project, "link-back", link.container, link.peer), src=b, dst=a),
    ]


def unique(specs: Iterable[Spec]) -> list[Spec]:
    """The specs in order, each once."""
    return list(dict.fromkeys(specs))


# ------------------------------------------------------------- reading back


def _bare_ip(text: str | None) -> IPv4Address | IPv6Address | None:
    """The address of ``A/32`` or ``A/128``."""
    if text is None or text.startswith("!") or "/" not in text:
        return None
    address, _, length = text.partition("/")
    ip = ip_address(address)
    return ip if length == str(ip.max_prefixlen) else None


def _from_endpoint(text: str) -> tuple[IPv4Address | IPv6Address, int]:
    """(address, first port) of ``A:PORT``, ``[A]:PORT`` or of a shifted
    port map ``...:FIRST-LAST/BASE``."""
    address, _, ports = text.rpartition(":")
    return (ip_address(address.removeprefix("[").removesuffix("]")),
            int(ports.partition("-")[0].partition("/")[0]))


Key = tuple  # (purpose, value) or (purpose, project, network or bridge name)


def _count(first: int | None, last: int | None) -> int:
    return 1 if last is None or first is None else last - first + 1


def _forward_from_dnat(tag: Tag, spec: Spec) -> Key:
    address, port = _from_endpoint(spec.to_destination or "")
    return ("dnat", Forward(tag.project, tag.container, spec.dport, address,
                            port, spec.protocol, _bare_ip(spec.dst),
                            _count(spec.dport, spec.dport_last)))


def _forward_from_accept(tag: Tag, spec: Spec) -> Key:
    return ("forward", Forward(
        tag.project, tag.container, spec.ctorigdstport, _bare_ip(spec.dst), spec.dport,
        spec.protocol, None if spec.ctorigdst is None else ip_address(spec.ctorigdst),
        _count(spec.ctorigdstport, spec.ctorigdstport_last)))


def _link(tag: Tag, spec: Spec) -> Key:
    source, destination = _bare_ip(spec.src), _bare_ip(spec.dst)
    if tag.purpose == "link-back":
        source, destination = destination, source
    return (tag.purpose, Link(tag.project, tag.container, source, tag.peer, destination))


def _family(spec: Spec) -> int:
    return FAMILY[spec.table]


def _named(purpose: str) -> tuple:
    """(to key, to spec) of a purpose whose rule names the bridge only."""
    make = {"outbound": outbound_spec, "replies": replies_spec, "deny": deny_spec}[purpose]
    field = "in_iface" if purpose == "outbound" else "out_iface"
    return (lambda tag, spec: (key_purpose(purpose, _family(spec)), tag.project,
                               getattr(spec, field)),
            lambda key: make(key[1], key[2], tag_purpose(key[0])[1]))


def _networked(purpose: str) -> tuple:
    make = {"masquerade": masquerade_spec, "hairpin": hairpin_spec}[purpose]
    return (lambda tag, spec: (key_purpose(purpose, _family(spec)), tag.project,
                               ip_network(spec.src)),
            lambda key: make(key[1], key[2]))


#: tag purpose -> (the key a spec of that purpose stands for, the spec of a key).
_PURPOSES = {
    "masquerade": _networked("masquerade"),
    "hairpin": _networked("hairpin"),
    "localhost": (lambda tag, spec: ("localhost", tag.project, spec.out_iface),
                  lambda key: localhost_spec(key[1], key[2])),
    "outbound": _named("outbound"),
    "replies": _named("replies"),
    "deny": _named("deny"),
    "guard": (lambda tag, spec: ("guard", tag.project, spec.in_iface),
              lambda key: guard_spec(key[1], key[2])),
    "isolate": (lambda tag, spec: (key_purpose("isolate", _family(spec)), tag.project,
                                   (spec.in_iface, _bare_ip((spec.dst or "")[1:]))),
                lambda key: isolate_spec(key[1], *key[2])),
    "dnat": (_forward_from_dnat, lambda key: dnat_spec(key[1])),
    "forward": (_forward_from_accept, lambda key: accept_spec(key[1])),
    "link": (_link, lambda key: link_specs(key[1])[0]),
    "link-back": (_link, lambda key: link_specs(key[1])[1]),
}


def parse(spec: Spec | None) -> Key | None:
    """The key of a tagged rule when it is exactly the rule Locker writes
    for that key (same table, chain, matches and tag); None otherwise."""
    tag = spec.tag if spec is not None else None
    if tag is None or tag.purpose not in _PURPOSES:
        return None
    to_key, to_spec = _PURPOSES[tag.purpose]
    try:
        key = to_key(tag, spec)
        return key if to_spec(key) == spec else None
    except (BackendError, ValueError, TypeError, AttributeError):
        return None


def spec_of(key: Key) -> Spec:
    """The rule Locker writes for a key (of a rule ``parse`` read)."""
    return _PURPOSES[tag_purpose(key[0])[0]][1](key)


#: Purposes whose rules sit in the project's own chains.
_OWN_CHAIN = frozenset({"dnat", "forward", "link", "link-back", "outbound", "replies"})


def legacy_chain(spec: Spec) -> str | None:
    """Where the old layout put a rule of this spec's purpose and project,
    when that is another chain than where it goes now."""
    tag = spec.tag
    if tag is None or tag.purpose not in _OWN_CHAIN:
        return None
    return PREROUTING if tag.purpose == "dnat" else FORWARD


def parse_legacy(spec: Spec | None) -> Key | None:
    """The key of a tagged rule of the old layout: exactly what Locker
    writes now for that key, but in the shared chain (``LOCKER_FORWARD``,
    ``LOCKER_PREROUTING``) instead of the project's own."""
    if spec is None or spec.tag is None or spec.tag.purpose not in _PURPOSES:
        return None
    if FAMILY.get(spec.table) != 4 or legacy_chain(spec) != spec.chain:
        return None
    now = {"dnat": pre_chain}.get(spec.tag.purpose, fwd_chain)(spec.tag.project)
    if now == spec.chain:
        return None
    return parse(replace(spec, chain=now))


def nat_doomed(bridges: Sequence[Bridge], keys: set) -> set[Spec]:
    """The specs ``remove_nat(bridges)`` deletes, given the keys found
    (``locker.pieces.nat_doomed``)."""
    for bridge in bridges:
        _check_ifname(bridge.name)
    return {spec_of(key) for key in nat_doomed_keys(bridges, keys)}


def key_project(key: Key) -> str:
    return key[1] if isinstance(key[1], str) else key[1].project


def _halves(keys: set, first: str, second: str) -> tuple[set, set]:
    ones = {k[1] for k in keys if k[0] == first}
    others = {k[1] for k in keys if k[0] == second}
    return ones & others, ones ^ others


def ruleset(keys: set, jumps: bool, unrecognised: Sequence[TaggedRule] = (),
            entry_missing: Sequence[str] = ()) -> Ruleset:
    """The Ruleset of the keys of the rules found in Locker's chains."""
    forwards, half_forwards = _halves(keys, "dnat", "forward")
    links, half_links = _halves(keys, "link", "link-back")
    nat, half_nat = nat_bridges(keys)
    return Ruleset(nat=frozenset(nat), forwards=frozenset(forwards), links=frozenset(links),
                   jumps=jumps, partial=frozenset(half_forwards | half_links | half_nat),
                   unrecognised=tuple(unrecognised), entry_missing=tuple(entry_missing))


def spec_text(spec: Spec) -> str:
    """The rule in ``iptables -S`` notation (without its comment)."""
    words = [f"-A {spec.chain}"]
    for flag, value in (("-s", spec.src), ("-d", spec.dst), ("-i", spec.in_iface),
                        ("-o", spec.out_iface), ("-p", spec.protocol)):
        if value:
            words.append(f"! {flag} {value[1:]}" if value.startswith("!") else f"{flag} {value}")
    if spec.dport is not None:
        words.append(f"-m {spec.protocol} --dport {spec.dport_text}")
    if spec.dst_type:
        words.append(f"-m addrtype --dst-type {spec.dst_type}")
    if spec.ctstate:
        words.append(f"-m conntrack ! --ctstate {spec.ctstate[1:]}" if spec.ctstate.startswith("!")
                     else f"-m conntrack --ctstate {spec.ctstate}")
        if spec.ctorigdst:
            words.append(f"--ctorigdst {spec.ctorigdst}")
        if spec.ctorigdstport is not None:
            words.append(f"--ctorigdstport {spec.ctorigdstport_text}")
    words.append(f"-j {spec.target}")
    if spec.to_destination:
        words.append(f"--to-destination {spec.to_destination}")
    return " ".join(words)
