"""The rules of the example backend, as ``nft`` prints them: each value's
rules rendered as text, and each printed rule read back into its value."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from locker import JUMP_COMMENT, Bridge, Forward, Link, Tag
from locker.model import UNKNOWN_NETWORK
from locker.pieces import ISOLATE, NAT_PURPOSES, nat_keys

FAMILY, TABLE = "ip", "locker_nftcli"
#: Base chain -> (its declaration, the chain of Locker's it jumps into, the
#: match before the jump).
BASE_CHAINS = {
    "PREROUTING": ("type nat hook prerouting priority dstnat; policy accept;",
                   "LOCKER_PREROUTING", "fib daddr type local "),
    # forwards reached from the host itself
    "OUTPUT": ("type nat hook output priority -100; policy accept;",
               "LOCKER_PREROUTING", "fib daddr type local "),
    "FORWARD": ("type filter hook forward priority filter; policy accept;",
                "LOCKER_FORWARD", ""),
    "INPUT": ("type filter hook input priority filter; policy accept;",
              "LOCKER_INPUT", ""),
    "POSTROUTING": ("type nat hook postrouting priority srcnat; policy accept;",
                    "LOCKER_POSTROUTING", ""),
}
#: The chains ``LOCKER_FORWARD`` jumps into first, in this order: the
#: administrator's (created empty, never changed) and the default deny.
HEAD = ("LOCKER_USER", "LOCKER_ISOLATION")
LOOPBACK = "127.0.0.0/8"
NEW = "ct state ! established,related"


@dataclass(frozen=True)
class Rule:
    chain: str
    text: str
    comment: str


def jump(base: str) -> Rule:
    _, target, match = BASE_CHAINS[base]
    return Rule(base, f"{match}jump {target}", JUMP_COMMENT)


def head_jumps() -> list[Rule]:
    """The first two rules of ``LOCKER_FORWARD``."""
    return [Rule("LOCKER_FORWARD", f"jump {chain}", JUMP_COMMENT) for chain in HEAD]


def forward_rules(f: Forward) -> dict[str, Rule]:
    to_host = f"ip daddr {f.host_ip} " if f.host_ip else ""
    original = f"ct original ip daddr {f.host_ip} " if f.host_ip else ""
    return {
        "dnat": Rule("LOCKER_PREROUTING",
                     f"{to_host}{f.protocol} dport {f.host_port} dnat to "
                     f"{f.container_ip}:{f.container_port}",
                     str(Tag(f.project, "dnat", f.container))),
        "forward": Rule("LOCKER_FORWARD",
                        f"ct status dnat ip daddr {f.container_ip} {f.protocol} dport "
                        f"{f.container_port} {original}ct original proto-dst {f.host_port} "
                        f"accept", str(Tag(f.project, "forward", f.container))),
    }


def link_rules(link: Link) -> dict[str, Rule]:
    a, b = link.container_ip, link.peer_ip
    return {
        "link": Rule("LOCKER_FORWARD", f"ip saddr {a} ip daddr {b} accept",
                     str(Tag(link.project, "link", link.container, link.peer))),
        "link-back": Rule("LOCKER_FORWARD", f"ip saddr {b} ip daddr {a} accept",
                          str(Tag(link.project, "link-back", link.container, link.peer))),
    }


def nat_rule(key: tuple) -> Rule:
    """The rule of a network rule's key ``(purpose, project, value)`` (see
    ``locker.pieces``: a network, a bridge name, or (name, gateway))."""
    purpose, project, value = key
    chain, text = {
        "masquerade": ("LOCKER_POSTROUTING", f"ip saddr {value} ip daddr != {value} masquerade"),
        "hairpin": ("LOCKER_POSTROUTING",
                    f"ip saddr {value} ip daddr {value} ct status dnat masquerade"),
        "localhost": ("LOCKER_POSTROUTING", f'ip saddr {LOOPBACK} oifname "{value}" masquerade'),
        "outbound": ("LOCKER_FORWARD", f'iifname "{value}" oifname != "{value}" accept'),
        "replies": ("LOCKER_FORWARD", f'oifname "{value}" ct state established,related accept'),
        "deny": ("LOCKER_ISOLATION",
                 f'oifname "{value}" iifname != "{value}" {NEW} ct status ! dnat drop'),
        "guard": ("LOCKER_INPUT", f'iifname "{value}" ip daddr {LOOPBACK} {NEW} drop'),
        ISOLATE: ("LOCKER_INPUT", f'iifname "{value[0]}" ip daddr != {value[1]} {NEW} drop'),
    }[purpose]
    return Rule(chain, text, str(Tag(project, purpose)))


def nat_rules(bridge: Bridge) -> list[Rule]:
    """Every network rule of ``add_nat([bridge])``, in the order of
    ``NAT_PURPOSES`` (none that needs the network when it is unknown)."""
    keys = [k for k in nat_keys(bridge)
            if bridge.network != UNKNOWN_NETWORK or k[0] in ("outbound", "replies", "deny",
                                                              "localhost", "guard")]
    return [nat_rule(k) for k in sorted(keys, key=lambda k: NAT_PURPOSES.index(k[0]))]


_DNAT = re.compile(r"(?:ip daddr (\S+) )?(tcp|udp) dport (\d+) dnat to (\S+):(\d+)")
_FORWARD = re.compile(r"ct status dnat ip daddr (\S+) (tcp|udp) dport (\d+) "
                      r"(?:ct original ip daddr (\S+) )?ct original proto-dst (\d+) accept")
_LINK = re.compile(r"ip saddr (\S+) ip daddr (\S+) accept")
#: Each network rule's text, its first group the key's value.
_NAT = {
    "masquerade": re.compile(r"ip saddr (\S+) ip daddr != \S+ masquerade"),
    "hairpin": re.compile(r"ip saddr (\S+) ip daddr \S+ ct status dnat masquerade"),
    "localhost": re.compile(r'ip saddr \S+ oifname "(\S+)" masquerade'),
    "outbound": re.compile(r'iifname "(\S+)" oifname != "\S+" accept'),
    "replies": re.compile(r'oifname "(\S+)" ct state established,related accept'),
    "deny": re.compile(r'oifname "(\S+)" iifname != .* drop'),
    "guard": re.compile(r'iifname "(\S+)" ip daddr 127\.\S+ .* drop'),
    ISOLATE: re.compile(r'iifname "(\S+)" ip daddr != (\S+) .* drop'),
}


def read(rule: Rule) -> tuple[str, object] | None:
    """(purpose, value) of a tagged rule exactly as Locker writes it, else
    None (the rule is unrecognised). The value of a network rule is its
    key (``locker.pieces``), of the others a Forward or a Link."""
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
        wanted = nat_rule(value)
    return (tag.purpose, value) if wanted == rule else None


def _parse(tag: Tag, text: str) -> object | None:
    try:
        if tag.purpose == "dnat" and (m := _DNAT.fullmatch(text)):
            host_ip, proto, host_port, cip, cport = m.groups()
            return Forward(tag.project, tag.container, int(host_port), IPv4Address(cip),
                           int(cport), proto, IPv4Address(host_ip) if host_ip else None)
        if tag.purpose == "forward" and (m := _FORWARD.fullmatch(text)):
            cip, proto, cport, host_ip, host_port = m.groups()
            return Forward(tag.project, tag.container, int(host_port), IPv4Address(cip),
                           int(cport), proto, IPv4Address(host_ip) if host_ip else None)
        if tag.purpose in ("link", "link-back") and (m := _LINK.fullmatch(text)):
            a, b = map(IPv4Address, m.groups())
            if tag.purpose == "link-back":
                a, b = b, a
            return Link(tag.project, tag.container, a, tag.peer, b)
        if tag.purpose in _NAT and (m := _NAT[tag.purpose].fullmatch(text)):
            if tag.purpose in ("masquerade", "hairpin"):
                return (tag.purpose, tag.project, IPv4Network(m.group(1)))
            # a bridge name Linux cannot hold is no rule of Locker's (Invalid)
            Bridge(tag.project, m.group(1), UNKNOWN_NETWORK)
            if tag.purpose == ISOLATE:
                return (ISOLATE, tag.project, (m.group(1), IPv4Address(m.group(2))))
            return (tag.purpose, tag.project, m.group(1))
    except (ValueError, TypeError):
        return None
    return None
