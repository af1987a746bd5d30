"""The rules of the example backend, as ``nft`` prints them: each value's
rules rendered as text, and each printed rule read back into its value."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from locker import JUMP_COMMENT, BackendError, Bridge, Forward, Link, Tag, bridge_name
from locker.model import PROTOCOLS

FAMILY, TABLE = "ip", "locker_nftcli"
#: Base chain -> (its declaration, the chain of Locker's it jumps into, the
#: match before the jump).
BASE_CHAINS = {
    "PREROUTING": ("type nat hook prerouting priority dstnat; policy accept;",
                   "LOCKER_PREROUTING", "fib daddr type local "),
    "FORWARD": ("type filter hook forward priority filter; policy accept;",
                "LOCKER_FORWARD", ""),
    "POSTROUTING": ("type nat hook postrouting priority srcnat; policy accept;",
                    "LOCKER_POSTROUTING", ""),
}


@dataclass(frozen=True)
class Rule:
    chain: str
    text: str
    comment: str


def jump(base: str) -> Rule:
    _, target, match = BASE_CHAINS[base]
    return Rule(base, f"{match}jump {target}", JUMP_COMMENT)


def check(value: Forward | Link | Bridge) -> None:
    """Refuse what the core would never send, and IPv6, which this example
    does not write (BackendError, nothing done)."""
    if getattr(value, "network6", None) is not None or getattr(value, "family", 4) == 6:
        raise BackendError(f"refusing {value}: the nftcli example backend writes IPv4 rules "
                           "only; a project with ipv6: true needs the nftables or iptables "
                           "backend")
    try:
        if isinstance(value, Forward):
            Tag(value.project, "dnat", value.container)
            if value.protocol not in PROTOCOLS:
                raise ValueError(f"protocol {value.protocol!r} is not one of {PROTOCOLS}")
            for port in (value.host_port, value.container_port):
                if not (isinstance(port, int) and 1 <= port <= 65535):
                    raise ValueError(f"port {port!r} is not 1 to 65535")
            IPv4Address(value.container_ip)
        elif isinstance(value, Link):
            Tag(value.project, "link", value.container, value.peer)
            IPv4Address(value.container_ip), IPv4Address(value.peer_ip)
        else:
            Tag(value.project, "masquerade")
            if value.name != bridge_name(value.project):
                raise ValueError(f"bridge {value.name!r} is not {bridge_name(value.project)!r}")
    except ValueError as exc:
        raise BackendError(f"refusing {value}: {exc}") from None


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


def nat_rules(bridge: Bridge) -> dict[str, Rule]:
    net, name, project = bridge.network, bridge.name, bridge.project
    return {
        "masquerade": Rule("LOCKER_POSTROUTING",
                           f"ip saddr {net} ip daddr != {net} masquerade",
                           str(Tag(project, "masquerade"))),
        "outbound": Rule("LOCKER_FORWARD", f'iifname "{name}" oifname != "{name}" accept',
                         str(Tag(project, "outbound"))),
        "replies": Rule("LOCKER_FORWARD",
                        f'oifname "{name}" ct state established,related accept',
                        str(Tag(project, "replies"))),
    }


_DNAT = re.compile(r"(?:ip daddr (\S+) )?(tcp|udp) dport (\d+) dnat to (\S+):(\d+)")
_FORWARD = re.compile(r"ct status dnat ip daddr (\S+) (tcp|udp) dport (\d+) "
                      r"(?:ct original ip daddr (\S+) )?ct original proto-dst (\d+) accept")
_LINK = re.compile(r"ip saddr (\S+) ip daddr (\S+) accept")
_MASQUERADE = re.compile(r"ip saddr (\S+) ip daddr != (\S+) masquerade")
_OUTBOUND = re.compile(r'iifname "(\S+)" oifname != "\S+" accept')
_REPLIES = re.compile(r'oifname "(\S+)" ct state established,related accept')


def read(rule: Rule) -> tuple[str, object] | None:
    """(purpose, value) of a tagged rule exactly as Locker writes it, else
    None (the rule is unrecognised). The value of a nat rule is a Bridge
    whose unknown part (network or name) is filled in from the tag."""
    tag = Tag.parse(rule.comment)
    if tag is None:
        return None
    value = _parse(tag, rule.text)
    if value is None:
        return None
    if isinstance(value, Forward):
        wanted = forward_rules(value)
    elif isinstance(value, Link):
        wanted = link_rules(value)
    else:
        wanted = nat_rules(value)
    return (tag.purpose, value) if wanted.get(tag.purpose) == rule else None


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
        if tag.purpose == "masquerade" and (m := _MASQUERADE.fullmatch(text)):
            return Bridge(tag.project, bridge_name(tag.project), IPv4Network(m.group(1)))
        if tag.purpose in ("outbound", "replies") and (
                m := (_OUTBOUND if tag.purpose == "outbound" else _REPLIES).fullmatch(text)):
            return Bridge(tag.project, m.group(1), IPv4Network("0.0.0.0/32"))
    except (ValueError, TypeError):
        return None
    return None
