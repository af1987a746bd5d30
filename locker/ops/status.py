"""What is really there: containers, the bridge, the rules in the kernel,
and the links in the containers' hosts files. Never the project file's
wishes, so that deviations show."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from locker import planner
from locker.context import Context
from locker.model import BridgeState, Forward, Link, Ruleset
from locker.runtime import ABSENT, FROZEN, RUNNING

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    lxc_name: str
    state: str
    configured: IPv4Interface | None
    addresses: tuple[IPv4Address, ...]
    hosts: tuple[planner.HostsEntry, ...]


@dataclass(frozen=True)
class Status:
    project: str
    bridge_name: str
    bridge: BridgeState | None
    containers: tuple[ContainerStatus, ...]
    rules: Ruleset

    def is_stale(self, rule: Forward | Link) -> bool:
        """A rule found in the kernel for a container (or a linked peer)
        that does not run, or not with the rule's address: traffic it
        catches goes nowhere. ``locker ports`` / ``links`` remove it."""
        by_name = {c.name: c for c in self.containers}
        ends = [(rule.container, rule.container_ip)]
        if isinstance(rule, Link):
            ends.append((rule.peer, rule.peer_ip))
        for name, ip in ends:
            found = by_name.get(name)
            if (found is None or found.state not in (RUNNING, FROZEN)
                    or found.configured is None or found.configured.ip != ip):
                return True
        return False


def status(ctx: Context) -> Status:
    containers = []
    for name in ctx.project.container_names:
        lxc = ctx.lxc(name)
        state = ctx.runtime.state(lxc)
        absent = state == ABSENT
        containers.append(ContainerStatus(
            name, lxc, state,
            None if absent else ctx.runtime.configured_address(lxc),
            () if absent else ctx.runtime.addresses(lxc),
            () if absent else tuple(planner.parse_hosts_entries(
                ctx.runtime.read_file(lxc, "/etc/hosts")))))
    return Status(ctx.project.name, ctx.bridge_name,
                  ctx.hooks.find_bridge(name=ctx.bridge_name), tuple(containers),
                  ctx.hooks.list_rules(project=ctx.project.name))


def to_json(result: Status) -> dict:
    """The ``status --json`` document (schema version 1)."""
    bridge = result.bridge
    rules = result.rules
    return {
        "schema_version": SCHEMA_VERSION,
        "project": result.project,
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
            "hosts": [{"address": str(h.address), "names": list(h.names)} for h in c.hosts],
        } for c in result.containers],
        "rules": {
            "chains_and_jumps": rules.jumps,
            "nat": [{"bridge": b.name, "network": str(b.network)}
                    for b in sorted(rules.nat, key=lambda b: b.name)],
            "forwards": [{
                "container": f.container,
                "host_ip": str(f.host_ip) if f.host_ip else None,
                "host_port": f.host_port,
                "protocol": f.protocol,
                "container_ip": str(f.container_ip),
                "container_port": f.container_port,
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
    }
