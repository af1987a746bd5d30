"""What is really there: containers, the bridge, the rules in the kernel,
the links in the containers' hosts files, and the diff against what the
project wants. Never the project file's wishes alone, so deviations show."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from locker import diff, planner
from locker.context import Context
from locker.diff import Diff, Item
from locker.errors import LockerError
from locker.model import Blocker, Bridge, BridgeState, Forward, Link, Ruleset, TaggedRule
from locker.ops import network
from locker import names
from locker.project import Project
from locker.runtime import ABSENT
from locker.state import ProjectRecord

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    lxc_name: str
    state: str
    configured: IPv4Interface | None
    addresses: tuple[IPv4Address, ...]
    hosts: tuple[planner.HostsEntry, ...]
    problem: str | None = None  # why a part of it could not be read
    #: lines of its /etc/hosts marked as Locker's that Locker would not
    #: write now: stale, or forged by someone inside the container
    not_lockers: tuple[planner.HostsEntry, ...] = ()


@dataclass(frozen=True)
class Status:
    project: str
    bridge_name: str
    bridge: BridgeState | None
    containers: tuple[ContainerStatus, ...]
    rules: Ruleset
    diff: Diff
    blockers: tuple[Blocker, ...] = ()
    overlaps: tuple[str, ...] = ()

    @property
    def in_place(self) -> bool:
        return not self.diff.differences

    def is_stale(self, rule: Forward | Link) -> bool:
        """A rule found in the kernel that the project does not want now."""
        return any(i.value == rule and i.status == diff.STALE for i in self.diff.items)


def status(ctx: Context) -> Status:
    facts = network.read_all(ctx, addresses=True)
    containers = network.in_parallel(
        ctx, lambda name: _container(ctx, name, facts), ctx.project.container_names)
    return Status(ctx.project.name, ctx.bridge_name, facts.bridge, tuple(containers),
                  facts.rules, network.compute_diff(ctx, facts), facts.blockers, facts.overlaps)


def _container(ctx: Context, name: str, facts: network.Facts) -> ContainerStatus:
    lxc = ctx.lxc(name)
    state = facts.states[name]
    addresses: tuple[IPv4Address, ...] = ()
    hosts: tuple[planner.HostsEntry, ...] = ()
    problem = None
    not_lockers: tuple[planner.HostsEntry, ...] = ()
    if state != ABSENT:
        try:
            addresses = facts.live.get(name, ())
            hosts = tuple(planner.parse_hosts_entries(ctx.runtime.read_file(lxc, "/etc/hosts")))
        except LockerError as exc:  # one container's refusal does not hide the others
            problem = str(exc)
        wanted = planner.hosts_entries(ctx.project, name, facts.addresses)
        not_lockers = tuple(h for h in hosts if h not in wanted)
    return ContainerStatus(name, lxc, state, facts.configured.get(name), addresses, hosts,
                           problem, not_lockers)


def describe(item: Item) -> str:
    """The item's value in words, for text and JSON alike."""
    value = item.value
    if isinstance(value, Forward):
        return str(value)
    if isinstance(value, Link):
        return f"to {value.peer} ({value.container_ip} <-> {value.peer_ip})"
    if isinstance(value, Bridge):
        six = f" {value.network6}" + ("" if value.nat6 else " (routed)") \
            if value.network6 is not None else ""
        if item.kind == diff.BRIDGE:
            return f"bridge {value.name} {value.network}{six}"
        isolated = ", isolated" if value.isolated else ""
        return f"network rules {value.name} {value.network}{six}{isolated}"
    if isinstance(value, TaggedRule):
        return f"{value.comment} in {value.location}: {value.text}"
    return str(value)


def item_to_json(item: Item) -> dict:
    return {"kind": item.kind, "status": item.status, "subject": item.subject,
            "value": describe(item), "reason": item.reason, "fix": item.fix}


def to_json(result: Status) -> dict:
    """The ``status --json`` document (schema version 1; ``items``,
    ``in_place``, ``blockers``, ``subnet_overlaps``, the containers'
    ``problem``, the hosts entries' ``written_by_locker`` and the network
    rules' ``isolated`` were added
    without changing what was there). Text from containers and the kernel
    is passed as it is: JSON escapes control characters itself."""
    bridge = result.bridge
    rules = result.rules
    return {
        "schema_version": SCHEMA_VERSION,
        "project": result.project,
        "in_place": result.in_place,
        "bridge": {
            "name": result.bridge_name,
            "exists": bridge is not None,
            "owned": bool(bridge and bridge.owned),
            "up": bool(bridge and bridge.up),
            "addresses": [str(a) for a in bridge.addresses] if bridge else [],
        },
        "containers": [{
            "name": c.name,
            "lxc_name": c.lxc_name,
            "state": c.state,
            "configured_address": str(c.configured) if c.configured else None,
            "addresses": [str(a) for a in c.addresses],
            "hosts": [{"address": str(h.address), "names": list(h.names),
                       "written_by_locker": h not in c.not_lockers} for h in c.hosts],
            "problem": c.problem,
        } for c in result.containers],
        "rules": {
            "chains_and_jumps": rules.jumps,
            "nat": [{"bridge": b.name, "network": str(b.network), "isolated": b.isolated,
                     "network6": str(b.network6) if b.network6 is not None else None}
                    for b in sorted(rules.nat, key=lambda b: (b.name, b.isolated))],
            "forwards": [{
                "container": f.container,
                "host_ip": str(f.host_ip) if f.host_ip else None,
                "host_port": f.host_port,
                "protocol": f.protocol,
                "container_ip": str(f.container_ip),
                "container_port": f.container_port,
                "count": f.count,
                "stale": result.is_stale(f),
            } for f in sorted(rules.forwards, key=lambda f: f.sort_key())],
            "links": [{
                "container": k.container,
                "container_ip": str(k.container_ip),
                "peer": k.peer,
                "peer_ip": str(k.peer_ip),
                "stale": result.is_stale(k),
            } for k in sorted(rules.links, key=lambda k: k.sort_key())],
        },
        "items": [item_to_json(i) for i in result.diff.items],
        "blockers": [{"what": b.what, "fix": b.fix} for b in result.blockers],
        "subnet_overlaps": list(result.overlaps),
    }


@dataclass(frozen=True)
class RecordedStatus:
    """``status`` without root: what a user may read. The project file's
    containers with the states the runtime lets the user see, and the
    project's network as the host state last recorded it; the kernel's
    rules need root."""

    project: str
    containers: tuple[tuple[str, str], ...]  # (name, state)
    record: ProjectRecord | None


def recorded_status(project: Project, record: ProjectRecord | None, runtime) -> RecordedStatus:
    states = tuple((name, runtime.state(names.lxc_name(project.name, name)))
                   for name in project.container_names)
    return RecordedStatus(project.name, states, record)


def recorded_to_json(result: RecordedStatus) -> dict:
    record = result.record
    return {
        "schema_version": SCHEMA_VERSION,
        "project": result.project,
        "as_root": False,
        "containers": [{"name": n, "state": s} for n, s in result.containers],
        "recorded": None if record is None else {
            "bridge": record.bridge, "subnet": str(record.subnet) if record.subnet else None,
            "backends": {"firewall": record.firewall, "link": record.link},
            "forwards": [str(f) for f in record.forwards]},
    }
