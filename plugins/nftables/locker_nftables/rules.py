"""Locker's rules as nft JSON, and back: pure functions, no kernel.

Layout of table ``ip locker`` (IPv4 only, like Locker's networks):

======================  ==================================  =====================
chain                   hook (type, priority)               rules
======================  ==================================  =====================
``PREROUTING``          prerouting (nat, dstnat -100)       ``fib daddr type local jump LOCKER_PREROUTING``
``FORWARD``             forward (filter, filter 0)          ``jump LOCKER_FORWARD``
``POSTROUTING``         postrouting (nat, srcnat 100)       ``jump LOCKER_POSTROUTING``
``LOCKER_PREROUTING``   regular                             one dispatch rule per project
``LOCKER_FORWARD``      regular                             one dispatch rule per project
``LOCKER_POSTROUTING``  regular                             one masquerade per project
``LOCKER_PRE_<p>``      regular                             the project's DNAT map lookups
``LOCKER_FWD_<p>``      regular                             its forward-set lookups, links, outbound, replies
======================  ==================================  =====================

The project's chains, maps and sets are in ``layout``; this module has the
rules that are one per value (links, outbound, replies, masquerade) and
the parser of every tagged rule. The jumps carry the comment ``LOCKER``;
every other rule its ``Tag``. Each rule is identified by a *key*: its
purpose and the value it was made from (a Forward, a Link, or the project
with its network or bridge name). The parser rebuilds the key from the
rule's matches, so adding compares keys (no duplicates) and removing
deletes the rules whose key is asked for.

*Old layout*: before the per-project chains, every rule sat in the shared
chains (DNATs in ``LOCKER_PREROUTING``; forward accepts, links, outbound
and replies in ``LOCKER_FORWARD``). ``parse_rule`` still reads such rules
back, marked ``legacy``, so that the next adding hook moves them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from locker.errors import BackendError
from locker.model import PROTOCOLS, Bridge, Forward, Link
from locker.names import JUMP_COMMENT, Tag
from locker.pieces import nat_bridges

from locker_nftables.kernel import FAMILY, TABLE, Command
from locker_nftables.layout import fwd_chain

LOCKER_PREROUTING = "LOCKER_PREROUTING"
LOCKER_FORWARD = "LOCKER_FORWARD"
LOCKER_POSTROUTING = "LOCKER_POSTROUTING"


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
)
REGULAR_CHAINS = (LOCKER_PREROUTING, LOCKER_FORWARD, LOCKER_POSTROUTING)

Key = tuple  # (purpose, value)


@dataclass(frozen=True)
class Rule:
    """One tagged rule Locker wants, or one found in its table (with handle)."""

    chain: str
    key: Key
    comment: str
    expr: tuple = ()
    handle: int | None = None

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
    if not isinstance(forward.container_ip, IPv4Address) or not (
            forward.host_ip is None or isinstance(forward.host_ip, IPv4Address)):
        raise BackendError(f"forward {forward} needs IPv4 addresses.")


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


def _accept_between(source: IPv4Address, destination: IPv4Address) -> tuple:
    return (_match("==", _payload("ip", "saddr"), str(source)),
            _match("==", _payload("ip", "daddr"), str(destination)),
            {"accept": None})


def link_rules(link: Link) -> list[Rule]:
    if not isinstance(link.container_ip, IPv4Address) or not isinstance(link.peer_ip, IPv4Address):
        raise BackendError(f"link {link} needs IPv4 addresses.")
    return [
        Rule(fwd_chain(link.project), ("link", link),
             _tag(link.project, "link", link.container, link.peer),
             _accept_between(link.container_ip, link.peer_ip)),
        Rule(fwd_chain(link.project), ("link-back", link),
             _tag(link.project, "link-back", link.container, link.peer),
             _accept_between(link.peer_ip, link.container_ip)),
    ]



def nat_rules(bridge: Bridge) -> list[Rule]:
    if not isinstance(bridge.network, IPv4Network):
        raise BackendError(f"bridge {bridge.name} needs an IPv4 network.")
    if not isinstance(bridge.name, str) or not 1 <= len(bridge.name) <= 15 \
            or not all(c.isascii() and (c.isalnum() or c == "_") for c in bridge.name):
        raise BackendError(f"invalid bridge name {bridge.name!r}: 1 to 15 letters, digits or '_'.")
    project, name, network = bridge.project, bridge.name, bridge.network
    iif, oif = {"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}
    return [
        Rule(LOCKER_POSTROUTING, ("masquerade", project, network), _tag(project, "masquerade"),
             (_match("==", _payload("ip", "saddr"), _prefix(network)),
              _match("!=", _payload("ip", "daddr"), _prefix(network)),
              {"masquerade": None})),
        Rule(fwd_chain(project), ("outbound", project, name), _tag(project, "outbound"),
             (_match("==", iif, name), _match("!=", oif, name), {"accept": None})),
        Rule(fwd_chain(project), ("replies", project, name), _tag(project, "replies"),
             (_match("==", oif, name),
              _match("in", {"ct": {"key": "state"}}, ["established", "related"]),
              {"accept": None})),
    ]


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


def _address(value: Any) -> IPv4Address:
    if not isinstance(value, str):
        raise Unparseable(value)
    return IPv4Address(value)


def _network(value: Any) -> IPv4Network:
    if not (isinstance(value, dict) and "prefix" in value):
        raise Unparseable(value)
    return IPv4Network(f"{value['prefix']['addr']}/{value['prefix']['len']}")


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


def parse_rule(chain: str, comment: str | None, expr: list) -> tuple[Key, bool] | None:
    """The key of a rule in Locker's table and whether it sits where the
    old layout put it (True) rather than where Locker writes it now, or
    None when the rule is not a well-formed tagged rule of Locker in
    either layout (a jump, a foreign, a damaged or a misplaced one)."""
    tag = Tag.parse(comment)
    if tag is None:
        return None
    try:
        key = _parse(tag, expr)
    except (Unparseable, ValueError, KeyError, TypeError):
        return None
    if str(Tag(*_tag_args(key))) != comment:
        return None
    now, old = _chains(key[0], tag.project)
    if chain not in (now, old):
        return None
    return key, chain == old


def _chains(purpose: str, project: str) -> tuple[str | None, str | None]:
    """Where a rule of this purpose sits now, and where the old layout put it."""
    if purpose == "masquerade":
        return LOCKER_POSTROUTING, None
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
    return (key[1], purpose)


def _parse(tag: Tag, expr: list) -> Key:
    matches, statement = _split(expr)
    purpose = tag.purpose
    if purpose == "dnat":
        proto = _protocol(matches)
        host_port = _port(_take(matches, f"{proto} dport"))
        host_ip = _take(matches, "ip daddr", optional=True)
        target = statement.get("dnat")
        if not isinstance(target, dict) or set(target) != {"addr", "port"}:
            raise Unparseable(statement)
        value: Any = Forward(tag.project, tag.container, host_port, _address(target["addr"]),
                             _port(target["port"]), proto,
                             None if host_ip is None else _address(host_ip))
    elif purpose == "forward":
        _expect_accept(statement)
        proto = _protocol(matches)
        container_port = _port(_take(matches, f"{proto} dport"))
        container_ip = _address(_take(matches, "ip daddr"))
        if _words(_take(matches, "ct status", ("in", "=="))) != {"dnat"}:
            raise Unparseable("ct status")
        host_port = _port(_take(matches, "ct original proto-dst"))
        host_ip = _take(matches, "ct original ip daddr", optional=True)
        value = Forward(tag.project, tag.container, host_port, container_ip, container_port,
                        proto, None if host_ip is None else _address(host_ip))
    elif purpose in ("link", "link-back"):
        _expect_accept(statement)
        source = _address(_take(matches, "ip saddr"))
        destination = _address(_take(matches, "ip daddr"))
        if purpose == "link-back":
            source, destination = destination, source
        value = Link(tag.project, tag.container, source, tag.peer, destination)
    elif purpose == "masquerade":
        if "masquerade" not in statement:
            raise Unparseable(statement)
        network = _network(_take(matches, "ip saddr"))
        if _network(_take(matches, "ip daddr", ("!=",))) != network:
            raise Unparseable("ip daddr")
        value = network
    elif purpose == "outbound":
        _expect_accept(statement)
        name = _take(matches, "meta iifname")
        if _take(matches, "meta oifname", ("!=",)) != name or not isinstance(name, str):
            raise Unparseable(name)
        value = name
    elif purpose == "replies":
        _expect_accept(statement)
        name = _take(matches, "meta oifname")
        if _words(_take(matches, "ct state", ("in", "=="))) != {"established", "related"} \
                or not isinstance(name, str):
            raise Unparseable(name)
        value = name
    else:
        raise Unparseable(purpose)
    if matches:
        raise Unparseable(matches)
    if purpose in ("masquerade", "outbound", "replies"):
        return (purpose, tag.project, value)
    return (purpose, value)


def _expect_accept(statement: dict) -> None:
    if statement != {"accept": None}:
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
    """The keys ``remove_nat(bridges)`` deletes, given the keys found: each
    bridge's masquerade, and its outbound and replies rules unless another
    masquerade of the project stays (they are that network's rules too:
    one bridge name per project)."""
    doomed = {r.key for b in bridges for r in nat_rules(b) if r.key[0] == "masquerade"}
    staying = {k[1] for k in keys if k[0] == "masquerade" and k not in doomed}
    return doomed | {r.key for b in bridges if b.project not in staying
                     for r in nat_rules(b) if r.key[0] != "masquerade"}


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
