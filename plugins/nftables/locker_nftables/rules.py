"""Locker's rules as nft JSON, and back: pure functions, no kernel.

Layout of table ``ip locker``, and of its IPv6 mirror ``ip6 locker`` for the
projects with IPv6 (see ``family``: the same chains and rules in the ip6
family's words, except that IPv6 has no localhost and no guard rule, and
its isolate rule drops ``ct state new`` only, so that neighbour discovery,
which conntrack leaves untracked, still reaches the host):

======================  ==================================  =====================
chain                   hook (type, priority)               rules
======================  ==================================  =====================
``PREROUTING``          prerouting (nat, dstnat -100)       ``fib daddr type local jump LOCKER_PREROUTING``
``OUTPUT``              output (nat, dstnat -100)           ``fib daddr type local jump LOCKER_PREROUTING``
``FORWARD``             forward (filter, filter 0)          ``jump LOCKER_FORWARD``
``INPUT``               input (filter, filter 0)            ``jump LOCKER_INPUT``
``POSTROUTING``         postrouting (nat, srcnat 100)       ``jump LOCKER_POSTROUTING``
``LOCKER_PREROUTING``   regular                             one dispatch rule per project
``LOCKER_FORWARD``      regular                             ``jump LOCKER_USER``, ``jump LOCKER_ISOLATION``,
                                                            then one dispatch rule per project
``LOCKER_USER``         regular                             the administrator's; never touched
``LOCKER_ISOLATION``    regular                             one deny per project
``LOCKER_INPUT``        regular                             one guard per project, an isolate per isolated one
``LOCKER_POSTROUTING``  regular                             masquerade, hairpin, localhost per project
``LOCKER_PRE_<p>``      regular                             the project's DNAT map lookups
``LOCKER_FWD_<p>``      regular                             its forward-set lookups, links, outbound, replies
======================  ==================================  =====================

``OUTPUT`` makes forwards work from the host itself: ``LOCKER_PREROUTING``
is the one chain entered by two jumps (from ``PREROUTING`` and ``OUTPUT``);
every other is entered by one.

The project's chains, maps and sets are in ``layout``; this module has the
rules that are one per value (links and a project's network rules) and
the parser of every tagged rule: a table (``PARSERS``) from a tag's purpose
to the function that reads the rule's matches back into its value. The
jumps carry the comment ``LOCKER``; every other rule its ``Tag``. Each rule
is identified by a *key*: its purpose and the value it was made from (a
Forward, a Link, or for a network rule the project with its network, its
bridge name, or its bridge name and gateway, as ``locker.pieces`` has
them). The parser rebuilds the key from the rule's matches, so adding
compares keys (no duplicates) and removing deletes the rules whose key is
asked for.

*Old layouts*: before the per-project chains, every rule sat in the shared
chains (DNATs in ``LOCKER_PREROUTING``; forward accepts, links, outbound
and replies in ``LOCKER_FORWARD``). ``parse_rule`` still reads such rules
back, marked ``legacy``, so that the next adding hook moves them. Before
the network policy there were no deny, hairpin, localhost, guard or isolate
rules and no ``OUTPUT``, ``INPUT``, ``LOCKER_USER``, ``LOCKER_ISOLATION``,
``LOCKER_INPUT``: the nat values read as partial and the entry points as
missing, and the next adding hook adds them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address, ip_network
from typing import Any

from locker.errors import BackendError
from locker.model import PROTOCOLS, UNKNOWN_NETWORK, Bridge, Forward, Link
from locker import pieces
from locker.names import JUMP_COMMENT, USER_CHAIN, Tag
from locker.pieces import nat_bridges

from locker_nftables.kernel import FAMILY, TABLE, Command
from locker_nftables.layout import fwd_chain

LOCKER_PREROUTING = "LOCKER_PREROUTING"
LOCKER_FORWARD = "LOCKER_FORWARD"
LOCKER_POSTROUTING = "LOCKER_POSTROUTING"
LOCKER_USER = USER_CHAIN
LOCKER_ISOLATION = "LOCKER_ISOLATION"
LOCKER_INPUT = "LOCKER_INPUT"
LOOPBACK = IPv4Network("127.0.0.0/8")


@dataclass(frozen=True)
class BaseChain:
    name: str
    type: str
    hook: str
    prio: int
    target: str
    only_local: bool = False  # jump only for packets to a local address

    def jump_expr(self) -> list[dict]:
        expr = [_match("==", {"fib": {"result": "type", "flags": ["daddr"]}}, "local")] \
            if self.only_local else []
        return expr + [{"jump": {"target": self.target}}]

    def is_jump(self, expr: list) -> bool:
        """Whether a rule of this chain is exactly Locker's jump (counters
        aside)."""
        return [e for e in expr if "counter" not in e] == self.jump_expr()


BASE_CHAINS = (
    BaseChain("PREROUTING", "nat", "prerouting", -100, LOCKER_PREROUTING, only_local=True),
    BaseChain("FORWARD", "filter", "forward", 0, LOCKER_FORWARD),
    BaseChain("POSTROUTING", "nat", "postrouting", 100, LOCKER_POSTROUTING),
    BaseChain("INPUT", "filter", "input", 0, LOCKER_INPUT),
    BaseChain("OUTPUT", "nat", "output", -100, LOCKER_PREROUTING, only_local=True),
)
REGULAR_CHAINS = (LOCKER_PREROUTING, LOCKER_FORWARD, LOCKER_POSTROUTING, LOCKER_USER,
                  LOCKER_ISOLATION, LOCKER_INPUT)
#: The first rules of ``LOCKER_FORWARD``, in this order, comment ``LOCKER``.
LEADING_JUMPS = (LOCKER_USER, LOCKER_ISOLATION)


Key = tuple  # (purpose, value)


@dataclass(frozen=True)
class Rule:
    """One tagged rule Locker wants, or one found in its table (with handle)."""

    chain: str
    key: Key
    comment: str
    expr: tuple = ()
    handle: int | None = None
    version: int = 4  # the address family: its table is ``ip`` or ``ip6`` locker

    def add_command(self) -> Command:
        return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": self.chain,
                                 "expr": list(self.expr), "comment": self.comment}}}


# ------------------------------------------------------------ JSON pieces

def _match(op: str, left: dict, right: Any) -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}


def _prefix(network: IPv4Network) -> dict:
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def table_commands() -> list[Command]:
    """``add`` commands for Locker's table and chains (no-ops when present)."""
    commands: list[Command] = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}]
    for name in REGULAR_CHAINS:
        commands.append({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name}}})
    for base in BASE_CHAINS:
        commands.append({"add": {"chain": {
            "family": FAMILY, "table": TABLE, "name": base.name, "type": base.type,
            "hook": base.hook, "prio": base.prio, "policy": "accept"}}})
    return commands


def jump_command(base: BaseChain) -> Command:
    return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": base.name,
                             "expr": base.jump_expr(), "comment": JUMP_COMMENT}}}


def leading_jump_expr(target: str) -> list[dict]:
    return [{"jump": {"target": target}}]


def leading_jump_commands() -> list[Command]:
    """Insert ``jump LOCKER_USER`` and ``jump LOCKER_ISOLATION`` at the head
    of ``LOCKER_FORWARD``, in that order (the last inserted comes first)."""
    return [{"insert": {"rule": {"family": FAMILY, "table": TABLE, "chain": LOCKER_FORWARD,
                                 "expr": leading_jump_expr(target), "comment": JUMP_COMMENT}}}
            for target in reversed(LEADING_JUMPS)]


def delete_command(handle: int, chain: str) -> Command:
    return {"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain,
                                "handle": handle}}}


# ----------------------------------------------------------- values -> rules

def _tag(*args: str | None) -> str:
    try:
        return str(Tag(*args))
    except ValueError as error:
        raise BackendError(f"cannot make a rule for an invalid name: {error}.") from error


def _check_port(port: object, what: str) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise BackendError(f"invalid {what} {port!r}: ports are 1 to 65535.")


def _check_forward(forward: Forward) -> None:
    if forward.protocol not in PROTOCOLS:
        raise BackendError(f"invalid protocol {forward.protocol!r} in forward {forward}: "
                           f"use one of {', '.join(PROTOCOLS)}.")
    _check_port(forward.host_port, "host port")
    _check_port(forward.container_port, "container port")
    if forward.host_ip is not None and forward.host_ip.version != forward.family:
        raise BackendError(f"forward {forward} mixes IPv4 and IPv6 addresses.")


def check_forward(forward: Forward) -> None:
    """Raise BackendError unless the forward can be written."""
    _check_forward(forward)
    _checked_names(forward.project, forward.container)


@lru_cache(maxsize=4096)
def _checked_names(project: str, container: str) -> None:
    _tag(project, "dnat", container)


def legacy_forward_rules(forward: Forward) -> list[Rule]:
    """A forward as the old layout wrote it: a DNAT rule in
    ``LOCKER_PREROUTING`` and an accept rule in ``LOCKER_FORWARD``. Kept to
    read (and test) the old layout; nothing writes it any more."""
    _check_forward(forward)
    proto, container = forward.protocol, str(forward.container_ip)
    daddr = [_match("==", _payload("ip", "daddr"), str(forward.host_ip))] if forward.host_ip else []
    dnat = daddr + [
        _match("==", _payload(proto, "dport"), forward.host_port),
        {"dnat": {"addr": container, "port": forward.container_port}},
    ]
    original_daddr = ([_match("==", {"ct": {"key": "ip daddr", "dir": "original"}},
                              str(forward.host_ip))] if forward.host_ip else [])
    accept = [
        _match("==", _payload("ip", "daddr"), container),
        _match("==", _payload(proto, "dport"), forward.container_port),
        _match("in", {"ct": {"key": "status"}}, "dnat"),
        _match("==", {"ct": {"key": "proto-dst", "dir": "original"}}, forward.host_port),
        *original_daddr,
        {"accept": None},
    ]
    return [
        Rule(LOCKER_PREROUTING, ("dnat", forward),
             _tag(forward.project, "dnat", forward.container), tuple(dnat)),
        Rule(LOCKER_FORWARD, ("forward", forward),
             _tag(forward.project, "forward", forward.container), tuple(accept)),
    ]


def _accept_between(source: IPv4Address | IPv6Address,
                    destination: IPv4Address | IPv6Address) -> tuple:
    return (_match("==", _payload("ip", "saddr"), str(source)),
            _match("==", _payload("ip", "daddr"), str(destination)),
            {"accept": None})


def link_rules(link: Link) -> list[Rule]:
    return [
        Rule(fwd_chain(link.project), ("link", link),
             _tag(link.project, "link", link.container, link.peer),
             _accept_between(link.container_ip, link.peer_ip), version=link.family),
        Rule(fwd_chain(link.project), ("link-back", link),
             _tag(link.project, "link-back", link.container, link.peer),
             _accept_between(link.peer_ip, link.container_ip), version=link.family),
    ]



def _check_bridge(bridge: Bridge) -> None:
    if not isinstance(bridge.network, IPv4Network) or bridge.network.num_addresses < 4:
        raise BackendError(f"bridge {bridge.name} needs an IPv4 network of /30 or wider.")
    _check_bridge_name(bridge.name)


def _check_bridge_name(name: object) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= 15 \
            or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        raise BackendError(f"invalid bridge name {name!r}: 1 to 15 letters, digits or '_'.")


_IIF, _OIF = {"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}
_CT_STATE, _CT_STATUS = {"ct": {"key": "state"}}, {"ct": {"key": "status"}}
#: "not established or related" as a flag test (``ct state ! established,related``);
#: ``ct state != {...}`` would need an anonymous set.
_NEW = _match("!", _CT_STATE, ["established", "related"])
#: "ct state new": IPv6's isolate, which must let untracked neighbour discovery pass.
_NEW_ONLY = _match("in", _CT_STATE, "new")
_SADDR, _DADDR = _payload("ip", "saddr"), _payload("ip", "daddr")


def _nat_expr(purpose: str, value: Any, version: int = 4) -> tuple:
    """The matches and statement of a project's network rule (``purpose``
    as its tag has it; ``version`` 6: the rule of the ``ip6`` table)."""
    if purpose == "masquerade":
        return (_match("==", _SADDR, _prefix(value)), _match("!=", _DADDR, _prefix(value)),
                {"masquerade": None})
    if purpose == "hairpin":
        return (_match("==", _SADDR, _prefix(value)), _match("==", _DADDR, _prefix(value)),
                _match("in", _CT_STATUS, "dnat"), {"masquerade": None})
    if purpose == "outbound":
        return (_match("==", _IIF, value), _match("!=", _OIF, value), {"accept": None})
    if purpose == "replies":
        return (_match("==", _OIF, value),
                _match("in", _CT_STATE, ["established", "related"]), {"accept": None})
    if purpose == "deny":
        # "ct status ! dnat" is a flag test; "ct status != dnat" compares the whole word
        return (_match("==", _OIF, value), _match("!=", _IIF, value), _NEW,
                _match("!", _CT_STATUS, "dnat"), {"drop": None})
    if purpose == "localhost":
        return (_match("==", _SADDR, _prefix(LOOPBACK)), _match("==", _OIF, value),
                {"masquerade": None})
    if purpose == "guard":
        return (_match("==", _IIF, value), _match("==", _DADDR, _prefix(LOOPBACK)), _NEW,
                {"drop": None})
    if purpose == "isolate":
        name, gateway = value
        return (_match("==", _IIF, name), _match("!=", _DADDR, str(gateway)),
                _NEW_ONLY if version == 6 else _NEW, {"drop": None})
    raise AssertionError(purpose)


#: Where each network rule sits, in the order ``nat_rules`` writes them.
NAT_CHAINS = {"masquerade": LOCKER_POSTROUTING, "hairpin": LOCKER_POSTROUTING,
              "localhost": LOCKER_POSTROUTING, "outbound": None, "replies": None,
              "deny": LOCKER_ISOLATION, "guard": LOCKER_INPUT, "isolate": LOCKER_INPUT}


def nat_rule(key: Key) -> Rule:
    """The rule of a network rule's key ``(purpose, project, value)``; an
    IPv6 key's purpose ends in 6 (``locker.pieces.key_purpose``)."""
    purpose, project, value = key
    purpose, version = pieces.tag_purpose(purpose)
    chain = NAT_CHAINS[purpose] or fwd_chain(project)
    return Rule(chain, key, _tag(project, purpose), _nat_expr(purpose, value, version),
                version=version)


def key_version(key: Key) -> int:
    """The address family (4 or 6) of a rule's or element's key."""
    if key[0] in pieces.KEY_PURPOSES:
        return pieces.tag_purpose(key[0])[1]
    return key[1].family


def nat_rules(bridge: Bridge) -> list[Rule]:
    _check_bridge(bridge)
    keys = pieces.nat_keys(bridge)
    return [nat_rule(key) for purpose in NAT_CHAINS for version in (4, 6)
            for key in sorted(keys, key=str) if key[0] == pieces.key_purpose(purpose, version)]


# ----------------------------------------------------------- rules -> values

class Unparseable(Exception):
    pass


def _describe(left: Any) -> str:
    """A stable name for a match's left side: 'ip daddr', 'tcp dport',
    'meta iifname', 'ct status', 'ct original proto-dst', 'fib daddr type'."""
    if isinstance(left, dict):
        if "payload" in left:
            p = left["payload"]
            return f"{p.get('protocol')} {p.get('field')}"
        if "meta" in left:
            return f"meta {left['meta'].get('key')}"
        if "ct" in left:
            ct = left["ct"]
            direction = f"{ct['dir']} " if "dir" in ct else ""
            return f"ct {direction}{ct.get('key')}"
    raise Unparseable(left)


def _words(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset([value])
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    if isinstance(value, dict) and "set" in value:
        return _words(value["set"])
    raise Unparseable(value)


def _address(value: Any) -> IPv4Address | IPv6Address:
    if not isinstance(value, str):
        raise Unparseable(value)
    return ip_address(value)


def _network(value: Any):
    if not (isinstance(value, dict) and "prefix" in value):
        raise Unparseable(value)
    return ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}")


def _port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unparseable(value)
    return value


def _split(expr: list) -> tuple[dict[str, tuple[str, Any]], dict]:
    """The matches of a rule by left side, and its one statement."""
    matches: dict[str, tuple[str, Any]] = {}
    statements = []
    for item in expr:
        if not isinstance(item, dict) or len(item) != 1:
            raise Unparseable(item)
        if "match" in item:
            m = item["match"]
            name = _describe(m.get("left"))
            if name in matches:
                raise Unparseable(name)
            matches[name] = (m.get("op"), m.get("right"))
        elif "counter" not in item:
            statements.append(item)
    if len(statements) != 1:
        raise Unparseable(statements)
    return matches, statements[0]


def _take(matches: dict, name: str, ops: tuple[str, ...] = ("==",), optional: bool = False):
    if name not in matches:
        if optional:
            return None
        raise Unparseable(name)
    op, right = matches.pop(name)
    if op not in ops:
        raise Unparseable(op)
    return right


def _protocol(matches: dict) -> str:
    found = [p for p in PROTOCOLS if f"{p} dport" in matches]
    if len(found) != 1:
        raise Unparseable(matches)
    return found[0]


def parse_rule(chain: str, comment: str | None, expr: list,
               version: int = 4) -> tuple[Key, bool] | None:
    """The key of a rule in Locker's table and whether it sits where the
    old layout put it (True) rather than where Locker writes it now, or
    None when the rule is not a well-formed tagged rule of Locker in
    either layout (a jump, a foreign, a damaged or a misplaced one).
    ``version`` 6: a rule of the ``ip6`` table, read in the ip family's
    words (``family.from_family``)."""
    tag = Tag.parse(comment)
    if tag is None or tag.purpose not in PARSERS:
        return None
    try:
        matches, statement = _split(expr)
        value = PARSERS[tag.purpose](tag, matches, statement)
        if matches:
            raise Unparseable(matches)
    except (Unparseable, ValueError, KeyError, TypeError):
        return None
    if tag.purpose in pieces.NAT_PURPOSES:
        key: Key = (pieces.key_purpose(tag.purpose, version), tag.project, value)
        if version == 6 and key[0] not in pieces.NAT_PURPOSES6:
            return None  # no localhost or guard rule in IPv6
    else:
        key = (tag.purpose, value)
    if _family_of_value(key, version) != version or str(Tag(*_tag_args(key))) != comment:
        return None
    now, old = _chains(key[0], tag.project)
    if chain not in (now, old):
        return None
    return key, chain == old


def _family_of_value(key: Key, version: int) -> int:
    """The family of the addresses a key holds (``version`` for a key
    without addresses)."""
    value = key[-1]
    if isinstance(value, (Forward, Link)):
        return value.family
    if isinstance(value, tuple):  # isolate: (name, gateway)
        return value[1].version
    return getattr(value, "version", version)


def _chains(purpose: str, project: str) -> tuple[str | None, str | None]:
    """Where a rule of this purpose sits now, and where the old layout put it."""
    purpose = pieces.tag_purpose(purpose)[0]
    if purpose in NAT_CHAINS and NAT_CHAINS[purpose] is not None:
        return NAT_CHAINS[purpose], None
    if purpose == "dnat":
        return None, LOCKER_PREROUTING
    if purpose == "forward":
        return None, LOCKER_FORWARD
    return fwd_chain(project), LOCKER_FORWARD


def _tag_args(key: Key) -> tuple:
    purpose, value = key[0], key[1]
    if purpose in ("dnat", "forward"):
        return (value.project, purpose, value.container)
    if purpose in ("link", "link-back"):
        return (value.project, purpose, value.container, value.peer)
    return (key[1], pieces.tag_purpose(purpose)[0])


# Each parser takes the tag, the rule's matches by left side (it takes out
# those it reads: any left over make the rule unrecognised) and its one
# statement, and returns the value.

def _parse_dnat(tag: Tag, matches: dict, statement: dict) -> Forward:
    proto = _protocol(matches)
    host_port = _port(_take(matches, f"{proto} dport"))
    host_ip = _take(matches, "ip daddr", optional=True)
    target = statement.get("dnat")
    if not isinstance(target, dict) or set(target) != {"addr", "port"}:
        raise Unparseable(statement)
    return Forward(tag.project, tag.container, host_port, _address(target["addr"]),
                   _port(target["port"]), proto,
                   None if host_ip is None else _address(host_ip))


def _parse_forward(tag: Tag, matches: dict, statement: dict) -> Forward:
    _expect(statement, "accept")
    proto = _protocol(matches)
    container_port = _port(_take(matches, f"{proto} dport"))
    container_ip = _address(_take(matches, "ip daddr"))
    if _words(_take(matches, "ct status", ("in", "=="))) != {"dnat"}:
        raise Unparseable("ct status")
    host_port = _port(_take(matches, "ct original proto-dst"))
    host_ip = _take(matches, "ct original ip daddr", optional=True)
    return Forward(tag.project, tag.container, host_port, container_ip, container_port,
                   proto, None if host_ip is None else _address(host_ip))


def _parse_link(tag: Tag, matches: dict, statement: dict) -> Link:
    _expect(statement, "accept")
    source = _address(_take(matches, "ip saddr"))
    destination = _address(_take(matches, "ip daddr"))
    if tag.purpose == "link-back":
        source, destination = destination, source
    return Link(tag.project, tag.container, source, tag.peer, destination)


def _parse_masquerade(tag: Tag, matches: dict, statement: dict) -> IPv4Network:
    _expect(statement, "masquerade")
    network = _network(_take(matches, "ip saddr"))
    if _network(_take(matches, "ip daddr", ("!=",))) != network:
        raise Unparseable("ip daddr")
    return network


def _parse_hairpin(tag: Tag, matches: dict, statement: dict) -> IPv4Network:
    _expect(statement, "masquerade")
    network = _network(_take(matches, "ip saddr"))
    if _network(_take(matches, "ip daddr")) != network \
            or _words(_take(matches, "ct status", ("in", "=="))) != {"dnat"}:
        raise Unparseable("hairpin")
    return network


def _parse_outbound(tag: Tag, matches: dict, statement: dict) -> str:
    _expect(statement, "accept")
    name = _name(_take(matches, "meta iifname"))
    if _take(matches, "meta oifname", ("!=",)) != name:
        raise Unparseable(name)
    return name


def _parse_replies(tag: Tag, matches: dict, statement: dict) -> str:
    _expect(statement, "accept")
    name = _name(_take(matches, "meta oifname"))
    if _words(_take(matches, "ct state", ("in", "=="))) != {"established", "related"}:
        raise Unparseable(name)
    return name


def _take_new(matches: dict) -> None:
    """``ct state ! established,related``."""
    if _words(_take(matches, "ct state", ("!",))) != {"established", "related"}:
        raise Unparseable("ct state")


def _parse_deny(tag: Tag, matches: dict, statement: dict) -> str:
    _expect(statement, "drop")
    name = _name(_take(matches, "meta oifname"))
    if _take(matches, "meta iifname", ("!=",)) != name \
            or _words(_take(matches, "ct status", ("!",))) != {"dnat"}:
        raise Unparseable(name)
    _take_new(matches)
    return name


def _parse_localhost(tag: Tag, matches: dict, statement: dict) -> str:
    _expect(statement, "masquerade")
    if _network(_take(matches, "ip saddr")) != LOOPBACK:
        raise Unparseable("ip saddr")
    return _name(_take(matches, "meta oifname"))


def _parse_guard(tag: Tag, matches: dict, statement: dict) -> str:
    _expect(statement, "drop")
    if _network(_take(matches, "ip daddr")) != LOOPBACK:
        raise Unparseable("ip daddr")
    _take_new(matches)
    return _name(_take(matches, "meta iifname"))


def _parse_isolate(tag: Tag, matches: dict, statement: dict) -> tuple[str, IPv4Address]:
    _expect(statement, "drop")
    gateway = _address(_take(matches, "ip daddr", ("!=",)))
    if gateway.version == 6:  # "ct state new" (the whole rule is compared by parse_rule)
        _take(matches, "ct state", ("in", "=="))
    else:
        _take_new(matches)
    return _name(_take(matches, "meta iifname")), gateway


PARSERS = {
    "dnat": _parse_dnat, "forward": _parse_forward,
    "link": _parse_link, "link-back": _parse_link,
    "masquerade": _parse_masquerade, "hairpin": _parse_hairpin,
    "outbound": _parse_outbound, "replies": _parse_replies, "deny": _parse_deny,
    "localhost": _parse_localhost, "guard": _parse_guard, "isolate": _parse_isolate,
}


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise Unparseable(value)
    return value


def _expect(statement: dict, verdict: str) -> None:
    if statement != {verdict: None}:
        raise Unparseable(statement)


# ------------------------------------------------------ keys -> Ruleset


@dataclass(frozen=True)
class Values:
    """Locker's values rebuilt from the keys of the rules found."""

    nat: frozenset[Bridge]
    forwards: frozenset[Forward]
    links: frozenset[Link]
    partial: frozenset


def _halves(keys: set, first: str, second: str) -> tuple[set, set]:
    ones = {k[1] for k in keys if k[0] == first}
    others = {k[1] for k in keys if k[0] == second}
    return ones & others, ones ^ others


def nat_doomed(bridges: Sequence[Bridge], keys: set) -> set:
    """The keys ``remove_nat(bridges)`` deletes, given the keys found (see
    ``locker.pieces.nat_doomed``); checks the bridges first."""
    for bridge in bridges:
        if bridge.network != UNKNOWN_NETWORK:
            _check_bridge(bridge)
        else:
            _check_bridge_name(bridge.name)
    return pieces.nat_doomed(bridges, keys)


def values(keys: set) -> Values:
    forwards, half_forwards = _halves(keys, "dnat", "forward")
    links, half_links = _halves(keys, "link", "link-back")
    nat, half_nat = nat_bridges(keys)
    return Values(frozenset(nat), frozenset(forwards), frozenset(links),
                  frozenset(half_forwards | half_links | half_nat))


def project_of(key: Key) -> str:
    return key[1] if isinstance(key[1], str) else key[1].project


# --------------------------------------------------------- rules -> text


def _side(value: Any) -> str:
    """A match's operand as nft prints it."""
    if isinstance(value, dict):
        if "payload" in value or "meta" in value or "ct" in value:
            try:
                return _describe(value).removeprefix("meta ")
            except Unparseable:
                pass
        if "fib" in value:
            return f"fib {' . '.join(value['fib'].get('flags', []))} {value['fib'].get('result')}"
        if "prefix" in value:
            return f"{value['prefix'].get('addr')}/{value['prefix'].get('len')}"
        if "set" in value:
            return "{ " + ", ".join(_side(v) for v in value["set"]) + " }"
    if isinstance(value, list):
        return ",".join(_side(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _statement(item: dict) -> str:
    (name, value), = item.items()
    if name == "match":
        op = {"==": "", "in": ""}.get(value.get("op"), f"{value.get('op')} ")
        return f"{_side(value.get('left'))} {op}{_side(value.get('right'))}"
    if value is None:
        return name
    if name == "dnat" and isinstance(value, dict) and "addr" in value:
        port = f":{value['port']}" if "port" in value else ""
        return f"dnat to {_side(value['addr'])}{port}"
    if name in ("jump", "goto") and isinstance(value, dict):
        return f"{name} {value.get('target')}"
    if name == "counter":
        return "counter"
    return f"{name} {json.dumps(value)}"


def rule_text(expr: list) -> str:
    """A rule's expression as nft would show it, near enough for people."""
    return " ".join(_statement(item) if isinstance(item, dict) and len(item) == 1
                    else json.dumps(item) for item in expr)
