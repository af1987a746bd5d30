"""The project's network: its bridge, its containers' addresses, and the
reconciliation of its forwards and links with what the kernel holds."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from locker import planner
from locker.context import Context
from locker.model import Bridge, Ruleset
from locker.plugins import emit
from locker.runtime import ABSENT, FROZEN, RUNNING


def bring_up(ctx: Context) -> Bridge:
    """Ensure the bridge, IPv4 forwarding and the project's NAT rules."""
    with ctx.lock():
        network = ctx.hooks.allocate_subnet(bridge=ctx.bridge_name)
        state = ctx.hooks.ensure_bridge(bridge=Bridge(ctx.project.name, ctx.bridge_name, network))
        bridge = Bridge(ctx.project.name, ctx.bridge_name, state.network or network)
        if ctx.hooks.ensure_ip_forwarding():
            ctx.say("IPv4 forwarding was off in this network namespace; "
                    "Locker turned it on (net.ipv4.ip_forward=1).")
        ctx.hooks.add_nat(bridges=[bridge])
    return bridge


def states(ctx: Context) -> dict[str, str]:
    return {name: ctx.runtime.state(ctx.lxc(name)) for name in ctx.project.container_names}


def is_up(state: str) -> bool:
    """Whether a container's rules should exist: it runs (frozen counts)."""
    return state in (RUNNING, FROZEN)


def assign(ctx: Context, network: IPv4Network, existing: Iterable[str]) -> dict[str, IPv4Interface]:
    existing = list(existing)
    configured = {name: ctx.runtime.configured_address(ctx.lxc(name)) for name in existing}
    return planner.assign_addresses(existing, configured, network)


def configured_ips(ctx: Context, present: dict[str, str]) -> dict[str, IPv4Address]:
    """The configured address of every container that exists."""
    ips = {}
    for name, state in present.items():
        if state != ABSENT:
            address = ctx.runtime.configured_address(ctx.lxc(name))
            if address is not None:
                ips[name] = address.ip
    return ips


@dataclass(frozen=True)
class _Kind:
    found: Callable[[Ruleset], frozenset]
    desired: Callable
    scoped: Callable[[Iterable, Collection[str]], frozenset]
    add: str
    remove: str
    arg: str


FORWARDS = _Kind(lambda r: r.forwards, planner.desired_forwards, planner.forwards_of,
                 "add_forward", "remove_forward", "forwards")
LINKS = _Kind(lambda r: r.links, planner.desired_links, planner.links_of,
              "add_link", "remove_link", "links")


def reconcile(ctx: Context, kind: _Kind, scope: Collection[str], keep: bool = True) -> planner.Changes:
    """Bring the kernel's rules of ``kind`` for the containers in ``scope``
    in step with the project: add what is missing, remove what is stale
    (rules of containers that do not run, or that the file no longer asks
    for). With ``keep`` False, remove them all."""
    with ctx.lock():
        # States are read under the lock too: a `stop` running meanwhile must
        # not have its container's rules added back.
        present = states(ctx)
        running = {name for name, state in present.items() if is_up(state)}
        found = kind.scoped(kind.found(ctx.hooks.list_rules(project=ctx.project.name)), scope)
        desired = (kind.scoped(kind.desired(ctx.project, configured_ips(ctx, present), running), scope)
                   if keep else frozenset())
        todo = planner.changes(desired, found)
        if todo.remove:
            getattr(ctx.hooks, kind.remove)(**{kind.arg: list(todo.remove)})
        if todo.add:
            getattr(ctx.hooks, kind.add)(**{kind.arg: list(todo.add)})
    if todo:
        emit(ctx.manager, "rules_changed", ctx.warn, project=ctx.project.name,
             added=Ruleset(**{kind.arg: frozenset(todo.add)}),
             removed=Ruleset(**{kind.arg: frozenset(todo.remove)}))
    return todo


def write_hosts(ctx: Context, scope: Collection[str], keep: bool = True) -> None:
    """Rewrite Locker's lines in the /etc/hosts of every existing container
    that is in ``scope`` or links to one in it: its own fqdn, and its linked
    peers, but (``keep`` False) none of the links of ``scope``."""
    present = states(ctx)
    ips = configured_ips(ctx, present)
    unlinked = () if keep else scope
    for spec in ctx.project.containers:
        touched = spec.name in scope or any(link.name in scope for link in spec.links)
        if not touched or present[spec.name] == ABSENT:
            continue
        lxc = ctx.lxc(spec.name)
        current = ctx.runtime.read_file(lxc, "/etc/hosts")
        wanted = planner.hosts_file(
            current, planner.hosts_entries(ctx.project, spec.name, ips, unlinked))
        if wanted != current:
            ctx.runtime.write_file(lxc, "/etc/hosts", wanted)
