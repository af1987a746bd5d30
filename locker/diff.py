"""The one diff between what a project wants and what is there.

Part of the planner: pure functions, nothing here touches the kernel, LXC
or the file system. ``status`` renders the diff, ``status --check`` counts
its differences, and the repair of ``start``, ``ports`` and ``links`` (and
so every ``--dry-run``) applies it, so the three can never disagree.

Every item has one status:

- *in place*: there, as Locker would write it;
- *missing*: wanted, nothing of it is there;
- *partial*: wanted, some of its rules are there and some are not;
- *stale*: there, but not wanted (its container does not run, runs with
  another address, or the file no longer asks for it; a rule with Locker's
  tag that Locker would not write; a partial value nobody wants);
- *blocked*: there, but another tool's drop will eat its traffic;
- *orphan*: a container named like the project's (``<project>_NAME``) that
  the project file does not list.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from locker import ipv6
from locker.model import (Blocker, Bridge, BridgeState, Forward, Link, Ruleset, TaggedRule,
                          port_text)
from locker.names import Tag
from locker.project import Project

IN_PLACE = "in place"
MISSING = "missing"
PARTIAL = "partial"
STALE = "stale"
BLOCKED = "blocked"
ORPHAN = "orphan"

BRIDGE, CHAINS, NAT, FORWARD, LINK, RULE, CONTAINER, DNS = (
    "bridge", "chains", "nat", "forward", "link", "rule", "container", "dns")

#: The command that repairs each kind of item.
REPAIRED_BY = {BRIDGE: "start", CHAINS: "ports", NAT: "start", FORWARD: "ports",
               LINK: "links", RULE: "ports", CONTAINER: "cleanup", DNS: "start"}


@dataclass(frozen=True)
class Item:
    """One thing of the project's network and what state it is in.

    ``subject`` is the container the item belongs to, or the project for
    project-wide items; ``reason`` says why it is not in place; ``fix`` is
    the command that repairs it.
    """

    kind: str
    status: str
    value: Bridge | Forward | Link | TaggedRule | str
    subject: str
    reason: str = ""
    fix: str = ""

    @property
    def differs(self) -> bool:
        return self.status != IN_PLACE


@dataclass(frozen=True)
class Wanted:
    """What the project wants now: its bridge (None while nothing of it
    needs one), the forwards and links of its running containers."""

    bridge: Bridge | None
    forwards: frozenset[Forward]
    links: frozenset[Link]


@dataclass(frozen=True)
class Found:
    """What is there: the bridge, the project's rules in the kernel, the
    orphaned containers, and the other tools' drops in the way."""

    bridge: BridgeState | None
    rules: Ruleset
    orphans: tuple[str, ...] = ()
    blockers: tuple[Blocker, ...] = ()
    dns: bool | None = None  # whether the DNS forwarder runs; None: turned off


@dataclass(frozen=True)
class Diff:
    project: str
    items: tuple[Item, ...]

    @property
    def differences(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.differs)

    def of(self, kind: str, *statuses: str) -> tuple[Item, ...]:
        return tuple(i for i in self.items
                     if i.kind == kind and (not statuses or i.status in statuses))

    def values(self, kind: str, *statuses: str) -> tuple:
        return tuple(i.value for i in self.of(kind, *statuses))


def wanted(project: Project, bridge: Bridge | None, addresses: Mapping[str, IPv4Address],
           running: Collection[str]) -> Wanted:
    """The forwards and links of the running containers that have an address.

    With IPv6 (``bridge.network6``) each container also has its IPv6
    address (``locker.ipv6.container_address``): a forward without HOST_IP
    is two values, one per family, one with an IPv6 HOST_IP is IPv6 only
    (and none without IPv6), and each link is two values."""
    network6 = bridge.network6 if bridge is not None else None
    up = {name: ip for name, ip in addresses.items() if name in running}
    families = [up]
    if network6 is not None:
        families.append({name: ipv6.container_address(network6, ip) for name, ip in up.items()})
    forwards = frozenset(
        Forward(project.name, spec.name, port.host_port, ips[spec.name],
                port.container_port, port.protocol, port.host_ip, port.count)
        for ips in families
        for spec in project.containers
        if spec.name in ips
        for port in spec.ports
        if port.host_ip is None or port.host_ip.version == ips[spec.name].version)
    links = frozenset(
        Link(project.name, spec.name, ips[spec.name], link.name, ips[link.name])
        for ips in families
        for spec in project.containers
        if spec.name in ips
        for link in spec.links
        if link.name in ips)
    return Wanted(bridge, forwards, links)


def diff(project: Project, want: Wanted, found: Found,
         running: Collection[str] = ()) -> Diff:
    """Every item of the project with its status. ``running``: the file's
    containers that run, to say why a stale rule is stale."""
    name = project.name
    why = _Reasons(project, frozenset(running), want)
    blocked = found.blockers[0] if found.blockers else None
    items: list[Item] = []
    items += _bridge(name, want.bridge, found.bridge)
    if want.bridge is not None and found.dns is not None:
        items.append(Item(DNS, IN_PLACE, "DNS forwarder", name) if found.dns else
                     Item(DNS, MISSING, "DNS forwarder", name, "it does not run",
                          f"locker {REPAIRED_BY[DNS]}"))
    anything = bool(want.bridge or want.forwards or want.links or found.rules.nat
                    or found.rules.forwards or found.rules.links or found.rules.partial)
    items += _chains(name, found.rules, anything)
    rules = found.rules
    items += _compare(NAT, {want.bridge} if want.bridge else set(), rules.nat,
                      _of_type(rules.partial, Bridge), lambda b: name, why.nat, blocked)
    items += _compare(FORWARD, want.forwards, rules.forwards,
                      _of_type(rules.partial, Forward), lambda f: f.container,
                      why.forward, blocked)
    items += _compare(LINK, want.links, rules.links, _of_type(rules.partial, Link),
                      lambda k: k.container, why.link, None)
    items += [Item(RULE, STALE, rule, subject_of(rule),
                   "it carries Locker's tag but is not a rule Locker would write",
                   f"locker {REPAIRED_BY[RULE]}") for rule in rules.unrecognised]
    items += [Item(CONTAINER, ORPHAN, orphan, orphan,
                   "the project file no longer lists it",
                   "locker cleanup (stops it; --keep-orphans leaves it)")
              for orphan in found.orphans]
    return Diff(name, tuple(items))


def _bridge(project: str, want: Bridge | None, found: BridgeState | None) -> list[Item]:
    if found is not None and not found.owned:
        return [Item(BRIDGE, STALE, found.name, project,
                     "a bridge of this name exists without Locker's alias: another tool made it",
                     "remove or rename that bridge")]
    if want is None:
        return []
    if found is None:
        return [Item(BRIDGE, MISSING, want, project, "the bridge does not exist",
                     "locker start")]
    if not found.up or found.network is None:
        return [Item(BRIDGE, PARTIAL, want, project,
                     "the bridge is down" if not found.up else "the bridge has no address",
                     "locker start")]
    if want.interface6 is not None and want.interface6 not in found.addresses6:
        return [Item(BRIDGE, PARTIAL, want, project,
                     f"the bridge lacks its IPv6 address {want.interface6}", "locker start")]
    return [Item(BRIDGE, IN_PLACE, want, project)]


def _chains(project: str, rules: Ruleset, anything: bool) -> list[Item]:
    if rules.jumps:
        return [Item(CHAINS, IN_PLACE, "Locker's chains and jumps", project)]
    if rules.entry_missing:
        return [Item(CHAINS, PARTIAL, missing, project,
                     "none of Locker's rules are reached without it", "locker ports")
                for missing in rules.entry_missing]
    if anything:
        return [Item(CHAINS, MISSING, "Locker's chains and jumps", project,
                     "none of Locker's rules are reached without them", "locker ports")]
    return []


def _compare(kind: str, want: Iterable, complete: Iterable, partial: Iterable,
             subject, reason, blocker: Blocker | None) -> list[Item]:
    """One item per value wanted or found, complete or partial."""
    want, complete, partial = set(want), set(complete), set(partial)
    fix = f"locker {REPAIRED_BY[kind]}"
    items = []
    for value in sorted(want | complete | partial, key=_sort_key):
        if value in want and value in complete:
            if blocker is not None:
                items.append(Item(kind, BLOCKED, value, subject(value),
                                  blocker.what, blocker.fix))
            else:
                items.append(Item(kind, IN_PLACE, value, subject(value)))
        elif value in want and value in partial:
            items.append(Item(kind, PARTIAL, value, subject(value),
                              "some of its rules are missing", fix))
        elif value in want:
            items.append(Item(kind, MISSING, value, subject(value), "", fix))
        else:
            what = "partly there and " if value in partial else ""
            items.append(Item(kind, STALE, value, subject(value),
                              what + reason(value), fix))
    return items


class _Reasons:
    """Why a rule that is there is not wanted."""

    def __init__(self, project: Project, running: frozenset[str], want: Wanted) -> None:
        self.project = project
        self.running = running
        self.want = want

    def _container(self, name: str) -> str | None:
        if name not in self.project.container_names:
            return f"{name} is not in the project file"
        if name not in self.running:
            return f"{name} does not run"
        return None

    def forward(self, forward: Forward) -> str:
        moved = [f for f in self.want.forwards
                 if (f.container, f.host_port, f.count, f.protocol, f.host_ip)
                 == (forward.container, forward.host_port, forward.count, forward.protocol,
                     forward.host_ip)]
        if moved:
            return (f"it should go to {moved[0].container_ip}:"
                    f"{port_text(moved[0].container_port, moved[0].count)}")
        return self._container(forward.container) or "the project file does not ask for it"

    def link(self, link: Link) -> str:
        return (self._container(link.container) or self._container(link.peer)
                or "the project file does not ask for it, or an end has another address")

    def nat(self, bridge: Bridge) -> str:
        want = self.want.bridge
        if want is None:
            return "the project needs no bridge now"
        if (want.name, want.network) != (bridge.name, bridge.network):
            return f"the bridge is {want.name} {want.network} now"
        if want.isolated != bridge.isolated:
            return (f"the project is {'' if want.isolated else 'not '}isolated now "
                    f"(isolated: {'true' if want.isolated else 'false'})")
        return "the project file does not ask for it"


def subject_of(rule: TaggedRule) -> str:
    """The container a tagged rule belongs to, or its project."""
    tag = Tag.parse(rule.comment)
    return tag.container if tag is not None and tag.container else rule.project


def _of_type(values: Iterable, cls: type) -> set:
    return {v for v in values if isinstance(v, cls)}


def _sort_key(value) -> tuple:
    if isinstance(value, Bridge):
        return (value.project, value.name, int(value.network.network_address), value.isolated)
    return value.sort_key()


# --------------------------------------------------------------- the repair

@dataclass(frozen=True)
class Repair:
    """The hook calls that bring the items of a diff in place."""

    remove_unrecognised: bool = False
    remove_nat: tuple[Bridge, ...] = ()
    add_nat: tuple[Bridge, ...] = ()
    remove_forwards: tuple[Forward, ...] = ()
    add_forwards: tuple[Forward, ...] = ()
    remove_links: tuple[Link, ...] = ()
    add_links: tuple[Link, ...] = ()
    unrecognised: tuple[TaggedRule, ...] = ()
    #: MISSING or PARTIAL: Locker's chains and jumps are restored through
    #: ``add_nat`` of ``entry_bridge`` (the backend creates them with it)
    entry: str | None = None
    entry_bridge: Bridge | None = None

    def __bool__(self) -> bool:
        return bool(self.remove_unrecognised or self.remove_nat or self.add_nat
                    or self.remove_forwards or self.add_forwards or self.remove_links
                    or self.add_links or self.entry)


def repair(result: Diff, kinds: Collection[str], containers: Collection[str] | None = None,
           bridge: Bridge | None = None) -> Repair:
    """What to change so that the items of ``kinds`` (among NAT, CHAINS,
    FORWARD, LINK, RULE) of ``containers`` (None: all, orphans too) are in
    place: remove what is stale, add what is missing or partial. Restoring
    the chains needs ``bridge``: the backend's ``add_nat`` creates them."""

    def chosen(kind: str, *statuses: str) -> tuple:
        return tuple(i.value for i in result.of(kind, *statuses)
                     if containers is None or i.subject in containers
                     or (kind == LINK and i.value.peer in containers))

    # The backend removes all of a project's unrecognised rules at once.
    unrecognised = result.values(RULE) if RULE in kinds else ()
    broken = result.of(CHAINS, MISSING, PARTIAL) if CHAINS in kinds else ()
    if broken:
        kinds = set(kinds) | {NAT}  # the chains come back with the network rules
    add_nat = chosen(NAT, MISSING, PARTIAL) if NAT in kinds else ()
    entry_bridge = (add_nat[0] if add_nat else bridge) if broken else None
    return Repair(
        remove_unrecognised=bool(unrecognised),
        unrecognised=unrecognised,
        remove_nat=chosen(NAT, STALE) if NAT in kinds else (),
        add_nat=add_nat,
        remove_forwards=chosen(FORWARD, STALE) if FORWARD in kinds else (),
        add_forwards=chosen(FORWARD, MISSING, PARTIAL) if FORWARD in kinds else (),
        remove_links=chosen(LINK, STALE) if LINK in kinds else (),
        add_links=chosen(LINK, MISSING, PARTIAL) if LINK in kinds else (),
        entry=broken[0].status if broken and entry_bridge else None,
        entry_bridge=entry_bridge,
    )


def removal(found: Ruleset, containers: Collection[str], forwards: bool = True,
            links: bool = True) -> Repair:
    """Everything of ``containers`` to remove, complete or partial (``stop``,
    ``rmports``, ``rmlinks``)."""
    def mine(value) -> bool:
        return value.container in containers or (isinstance(value, Link)
                                                 and value.peer in containers)
    values = set(found.forwards) | set(found.links) | set(found.partial)
    return Repair(
        remove_forwards=tuple(sorted((v for v in values if isinstance(v, Forward) and mine(v)),
                                     key=_sort_key)) if forwards else (),
        remove_links=tuple(sorted((v for v in values if isinstance(v, Link) and mine(v)),
                                  key=_sort_key)) if links else (),
    )
