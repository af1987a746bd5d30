"""The rules of the example backend, as ``nft`` prints them: each value's
rules rendered as text, and each printed rule read back into its value.

Values are valid by construction (``locker.model`` checks a Bridge,
Forward or Link when it is made), so nothing here checks them again; a
rule whose matches do not make a valid value reads back as None
(unrecognised).

A port range (``Forward.count`` > 1) is one rule per half. The DNAT of a
range of the same ports on both sides keeps the port (``tcp dport
6100-6102 dnat to 10.1.1.3``); a shifted range looks the container port up
in an anonymous map with one entry per port (``tcp dport 6000-6002 dnat to
10.1.1.2:tcp dport map { 6000 : 7000, 6001 : 7001, 6002 : 7002 }``), as
nft 1.0.6 has no shifted port range in a DNAT. The accept matches both
port ranges.

A project's network rules (its nat value) are read back into the keys of
``locker.pieces``: ``(purpose, project, value)``, value the network, the
bridge name or ``(name, gateway)``; ``pieces.nat_bridges`` makes Bridges of
them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from locker import JUMP_COMMENT, Bridge, Forward, Link, Tag
from locker.model import UNKNOWN_NETWORK, port_text
from locker.pieces import ISOLATE, NAME_PURPOSES, NETWORK_PURPOSES, nat_keys

FAMILY, TABLE = "ip", "locker_nftcli"
#: Base chain -> (its declaration, the chain of Locker's it jumps into, the
#: match before the jump). ``OUTPUT`` sends the host's own connections to
#: local addresses through the forwards' DNATs.
BASE_CHAINS = {
    "PREROUTING": ("type nat hook prerouting priority dstnat; policy accept;",
                   "LOCKER_PREROUTING", "fib daddr type local "),
    "OUTPUT": ("type nat hook output priority -100; policy accept;",
               "LOCKER_PREROUTING", "fib daddr type local "),
    "FORWARD": ("type filter hook forward priority filter; policy accept;",
                "LOCKER_FORWARD", ""),
    "POSTROUTING": ("type nat hook postrouting priority srcnat; policy accept;",
                    "LOCKER_POSTROUTING", ""),
    "INPUT": ("type filter hook input priority filter; policy accept;",
              "LOCKER_INPUT", ""),
}
#: The administrator's chain: created empty, then never read or touched.
USER_CHAIN = "LOCKER_USER"
#: The chains ``LOCKER_FORWARD`` jumps into first, in this order.
LEADING = (USER_CHAIN, "LOCKER_ISOLATION")
#: Where each network rule sits (outbound and replies accept forwarded
#: traffic; deny is in LOCKER_ISOLATION so that no accept comes first).
NAT_CHAINS = {"masquerade": "LOCKER_POSTROUTING", "hairpin": "LOCKER_POSTROUTING",
              "localhost": "LOCKER_POSTROUTING", "outbound": "LOCKER_FORWARD",
              "replies": "LOCKER_FORWARD", "deny": "LOCKER_ISOLATION",
              "guard": "LOCKER_INPUT", ISOLATE: "LOCKER_INPUT"}
#: "Opens a connection": nft's flag test, printed as written.
NEW = "ct state ! established,related"


@dataclass(frozen=True)
class Rule:
    chain: str
    text: str
    comment: str


def jump(base: str) -> Rule:
    _, target, match = BASE_CHAINS[base]
    return Rule(base, f"{match}jump {target}", JUMP_COMMENT)


def leading_jump(target: str) -> Rule:
    return Rule("LOCKER_FORWARD", f"jump {target}", JUMP_COMMENT)


def _dnat_target(f: Forward) -> str:
    if f.count == 1:
        return f"{f.container_ip}:{f.container_port}"
    if f.host_port == f.container_port:
        return str(f.container_ip)               # the port stays
    pairs = ", ".join(f"{f.host_port + i} : {f.container_port + i}" for i in range(f.count))
    return f"{f.container_ip}:{f.protocol} dport map {{ {pairs} }}"


def forward_rules(f: Forward) -> dict[str, Rule]:
    to_host = f"ip daddr {f.host_ip} " if f.host_ip else ""
    original = f"ct original ip daddr {f.host_ip} " if f.host_ip else ""
    host_ports = port_text(f.host_port, f.count)
    return {
        "dnat": Rule("LOCKER_PREROUTING",
                     f"{to_host}{f.protocol} dport {host_ports} dnat to {_dnat_target(f)}",
                     str(Tag(f.project, "dnat", f.container))),
        "forward": Rule("LOCKER_FORWARD",
                        f"ct status dnat ip daddr {f.container_ip} {f.protocol} dport "
                        f"{port_text(f.container_port, f.count)} {original}"
                        f"ct original proto-dst {host_ports} accept",
                        str(Tag(f.project, "forward", f.container))),
    }


def link_rules(link: Link) -> dict[str, Rule]:
    a, b = link.container_ip, link.peer_ip
    return {
        "link": Rule("LOCKER_FORWARD", f"ip saddr {a} ip daddr {b} accept",
                     str(Tag(link.project, "link", link.container, link.peer))),
        "link-back": Rule("LOCKER_FORWARD", f"ip saddr {b} ip daddr {a} accept",
                          str(Tag(link.project, "link-back", link.container, link.peer))),
    }


def nat_rule(purpose: str, project: str, value: object) -> Rule:
    """The rule of the network rule key ``(purpose, project, value)``."""
    if purpose == "masquerade":
        text = f"ip saddr {value} ip daddr != {value} masquerade"
    elif purpose == "hairpin":
        text = f"ip saddr {value} ip daddr {value} ct status dnat masquerade"
    elif purpose == "localhost":
        text = f'ip saddr 127.0.0.0/8 oifname "{value}" masquerade'
    elif purpose == "outbound":
        text = f'iifname "{value}" oifname != "{value}" accept'
    elif purpose == "replies":
        text = f'oifname "{value}" ct state established,related accept'
    elif purpose == "deny":
        text = f'oifname "{value}" iifname != "{value}" {NEW} ct status ! dnat drop'
    elif purpose == "guard":
        text = f'iifname "{value}" ip daddr 127.0.0.0/8 {NEW} drop'
    else:                                          # isolate
        name, gateway = value
        text = f'iifname "{name}" ip daddr != {gateway} {NEW} drop'
    return Rule(NAT_CHAINS[purpose], text, str(Tag(project, purpose)))


def nat_rules(bridge: Bridge) -> list[Rule]:
    """Every rule of the bridge's nat value (``locker.pieces.nat_keys``);
    of a bridge whose network is unknown, only those that name the bridge."""
    keys = [key for key in nat_keys(bridge)
            if bridge.network != UNKNOWN_NETWORK or key[0] in NAME_PURPOSES]
    return [nat_rule(*key) for key in sorted(keys, key=str)]


_DNAT = re.compile(r"(?:ip daddr (\S+) )?(tcp|udp) dport (\d+)(?:-(\d+))? dnat to ([\d.]+)"
                   r"(?::(\d+)|:(?:tcp|udp) dport map \{ \d+ : (\d+),.*)?")
_FORWARD = re.compile(r"ct status dnat ip daddr (\S+) (tcp|udp) dport (\d+)(?:-\d+)? "
                      r"(?:ct original ip daddr (\S+) )?ct original proto-dst (\d+)(?:-(\d+))? "
                      r"accept")
_LINK = re.compile(r"ip saddr (\S+) ip daddr (\S+) accept")
#: The value in each network rule: a network, a bridge name, or a name and
#: a gateway (isolate).
_NAT = {
    "masquerade": re.compile(r"ip saddr (\S+) ip daddr != \S+ masquerade"),
    "hairpin": re.compile(r"ip saddr (\S+) ip daddr \S+ ct status dnat masquerade"),
    "localhost": re.compile(r'ip saddr 127\.0\.0\.0/8 oifname "(\S+)" masquerade'),
    "outbound": re.compile(r'iifname "(\S+)" oifname != "\S+" accept'),
    "replies": re.compile(r'oifname "(\S+)" ct state established,related accept'),
    "deny": re.compile(r'oifname "(\S+)" iifname .*'),
    "guard": re.compile(r'iifname "(\S+)" ip daddr 127\.0\.0\.0/8 .*'),
    ISOLATE: re.compile(r'iifname "(\S+)" ip daddr != (\S+) .*'),
}


def read(rule: Rule) -> tuple[str, object] | None:
    """(purpose, value) of a tagged rule exactly as Locker writes it, else
    None (the rule is unrecognised). The value is a Forward or a Link, or
    for a network rule its ``locker.pieces`` key."""
    tag = Tag.parse(rule.comment)
    if tag is None:
        return None
    value = _parse(tag, rule.text)
    if value is None:
        return None
    if isinstance(value, Forward):
        wanted = forward_rules(value).get(tag.purpose)
    elif isinstance(value, Link):
        wanted = link_rules(value).get(tag.purpose)
    else:
        wanted = nat_rule(*value)
    return (tag.purpose, value) if wanted == rule else None


def _count(first: str, last: str | None) -> int:
    return int(last) - int(first) + 1 if last else 1


def _parse(tag: Tag, text: str) -> object | None:
    try:
        if tag.purpose == "dnat" and (m := _DNAT.fullmatch(text)):
            host_ip, proto, host_port, host_end, cip, cport, mapped = m.groups()
            return Forward(tag.project, tag.container, int(host_port), IPv4Address(cip),
                           int(cport or mapped or host_port), proto,
                           IPv4Address(host_ip) if host_ip else None,
                           _count(host_port, host_end))
        if tag.purpose == "forward" and (m := _FORWARD.fullmatch(text)):
            cip, proto, cport, host_ip, host_port, host_end = m.groups()
            return Forward(tag.project, tag.container, int(host_port), IPv4Address(cip),
                           int(cport), proto, IPv4Address(host_ip) if host_ip else None,
                           _count(host_port, host_end))
        if tag.purpose in ("link", "link-back") and (m := _LINK.fullmatch(text)):
            a, b = map(IPv4Address, m.groups())
            if tag.purpose == "link-back":
                a, b = b, a
            return Link(tag.project, tag.container, a, tag.peer, b)
        if tag.purpose in _NAT and (m := _NAT[tag.purpose].fullmatch(text)):
            if tag.purpose in NETWORK_PURPOSES:
                return (tag.purpose, tag.project, IPv4Network(m.group(1)))
            name = Bridge(tag.project, m.group(1), UNKNOWN_NETWORK).name  # a valid name
            if tag.purpose in NAME_PURPOSES:
                return (tag.purpose, tag.project, name)
            return (tag.purpose, tag.project, (name, IPv4Address(m.group(2))))
    except (ValueError, TypeError):
        return None
    return None
