"""The project's network: what is there (the facts), its bridge, and the
changes of its rules, each done through the command's journal."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Network
from typing import TypeVar

from locker import diff, planner
from locker.context import Context
from locker.diff import Diff, Found, Repair
from locker.errors import BackendError, ContainerError, LockerError, raise_all
from locker.journal import Change
from locker.model import Blocker, Bridge, BridgeState, Forward, Link, Ruleset
from locker.plugins import emit
from locker.runtime import ABSENT, FROZEN, RUNNING, STOPPED

KNOWN_STATES = (RUNNING, FROZEN, STOPPED, ABSENT)
T = TypeVar("T")


def is_up(state: str) -> bool:
    """Whether a container's rules should exist: it runs (frozen counts)."""
    return state in (RUNNING, FROZEN)


@dataclass(frozen=True)
class Facts:
    """What one command found, read once: the file's containers' states and
    configured addresses, the orphans, and (when asked for) the bridge, the
    project's rules and the other tools' drops."""

    states: dict[str, str]
    configured: dict[str, IPv4Interface | None]
    orphans: tuple[str, ...] = ()
    bridge: BridgeState | None = None
    rules: Ruleset = Ruleset()
    blockers: tuple[Blocker, ...] = ()
    overlaps: tuple[str, ...] = ()  # what has come to overlap the bridge's subnet
    #: the addresses the running containers have now, when read (``status``)
    live: dict[str, tuple[IPv4Address, ...]] = field(default_factory=dict)

    @property
    def running(self) -> frozenset[str]:
        return frozenset(n for n, s in self.states.items() if is_up(s))

    @property
    def unknown(self) -> frozenset[str]:
        """Containers whose state could not be read: their rules stay."""
        return frozenset(n for n, s in self.states.items() if s not in KNOWN_STATES)

    @property
    def addresses(self) -> dict[str, IPv4Address]:
        return {n: a.ip for n, a in self.configured.items() if a is not None}


def read_containers(ctx: Context, addresses: bool = False) -> Facts:
    """States and configured addresses of the file's containers, and the
    names of the orphans: one survey of the runtime for all of them, which
    with ``addresses`` also reads the addresses the running ones have."""
    names = ctx.project.container_names
    survey = ctx.runtime.survey([ctx.lxc(n) for n in names], addresses)
    states = {n: survey[ctx.lxc(n)].state for n in names}
    live = {n: survey[ctx.lxc(n)].addresses for n in names} if addresses else {}
    configured = {name: ctx.runtime.configured_address(ctx.lxc(name))
                  for name, state in states.items() if state != ABSENT}
    prefix = ctx.lxc("")
    orphans = tuple(sorted(
        lxc[len(prefix):] for lxc in ctx.runtime.names()
        if lxc.startswith(prefix) and lxc[len(prefix):] not in ctx.project.container_names))
    return Facts(states, configured, orphans, live=live)


def in_parallel(ctx: Context, read: Callable[[str], T], names: Sequence[str]) -> list[T]:
    """``read`` of every name, up to ``ctx.parallel`` at once, in order."""
    if ctx.parallel <= 1 or len(names) <= 1:
        return [read(name) for name in names]
    with ThreadPoolExecutor(max_workers=min(ctx.parallel, len(names))) as pool:
        return list(pool.map(read, names))


def read_all(ctx: Context, addresses: bool = False) -> Facts:
    """``read_containers`` and ``read_network`` at once: the runtime's
    survey (a command that mostly waits) runs in a thread of its own while
    this one reads the kernel."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        containers = pool.submit(read_containers, ctx, addresses)
        network = read_network(ctx, Facts({}, {}))
        return replace(containers.result(), bridge=network.bridge, rules=network.rules,
                       blockers=network.blockers, overlaps=network.overlaps)


def read_network(ctx: Context, facts: Facts, rules_only: bool = False) -> Facts:
    """``facts`` with the bridge, the project's rules, the blockers and
    what overlaps the subnet. ``rules_only``: a command that changes only
    rules (``ports``, ``links``, ``stop``) reads just the rules, and takes
    the bridge's subnet from the host state when it is recorded there."""
    if rules_only:
        recorded = _recorded_bridge(ctx)
        if recorded is not None:
            rules = ctx.hooks.list_rules(project=ctx.project.name)
            return replace(facts, bridge=recorded, rules=rules)
    bridge = ctx.hooks.find_bridge(name=ctx.bridge_name)
    rules = ctx.hooks.list_rules(project=ctx.project.name)
    wanted_bridge = _bridge_value(ctx, bridge)
    blockers = tuple(ctx.hooks.find_blockers(bridges=[wanted_bridge]) or ()) \
        if wanted_bridge is not None else ()
    overlaps = tuple(ctx.hooks.subnet_conflicts(bridge=ctx.bridge_name) or ()) \
        if wanted_bridge is not None else ()
    return replace(facts, bridge=bridge, rules=rules, blockers=blockers, overlaps=overlaps)


def _recorded_bridge(ctx: Context) -> BridgeState | None:
    """The bridge as the host state remembers it (saves the link backend's
    import and read where only rules change)."""
    record = ctx.record_now()
    if record.subnet is None or record.bridge != ctx.bridge_name or record.creating_bridge:
        return None
    gateway = IPv4Interface((int(record.subnet.network_address) + 1, record.subnet.prefixlen))
    six = ctx.bridge(record.subnet).interface6
    return BridgeState(ctx.bridge_name, (gateway,), True, addresses6=(six,) if six else ())


def _bridge_value(ctx: Context, state: BridgeState | None) -> Bridge | None:
    if state is None or not state.owned or state.network is None:
        return None
    return ctx.bridge(state.network)


def compute_diff(ctx: Context, facts: Facts) -> Diff:
    """The project's diff from facts that hold the network."""
    bridge = _bridge_value(ctx, facts.bridge)
    want = diff.wanted(ctx.project, bridge, facts.addresses, facts.running)
    want = _keep_unknown(want, facts)
    dns = None if ctx.dns is None else ctx.dns.pid() is not None
    found = Found(facts.bridge, facts.rules, facts.orphans, facts.blockers, dns)
    return diff.diff(ctx.project, want, found, facts.running)


def _keep_unknown(want: diff.Wanted, facts: Facts) -> diff.Wanted:
    """Containers of unknown state keep the rules they have: unknown is not stopped."""
    if not facts.unknown:
        return want
    rules = facts.rules
    keep_forwards = {f for f in rules.forwards if f.container in facts.unknown}
    keep_links = {k for k in rules.links
                  if k.container in facts.unknown or k.peer in facts.unknown}
    return diff.Wanted(want.bridge, want.forwards | keep_forwards, want.links | keep_links)


# -------------------------------------------------------------- the bridge

def bring_up(ctx: Context, facts: Facts) -> tuple[Bridge, Facts]:
    """Ensure the bridge, IPv4 forwarding, the project's network rules and
    Locker's chains, under the host lock. Returns the bridge and the facts
    with the network as it is now."""
    journal = ctx.journal
    with ctx.lock():
        found_bridge = ctx.hooks.find_bridge(name=ctx.bridge_name)
        record = ctx.record_now()
        adopt = record.creating_bridge and record.bridge == ctx.bridge_name
        reserved = [r.subnet for r in ctx.others() if r.subnet]
        if found_bridge is not None and found_bridge.owned and found_bridge.network:
            network = found_bridge.network
        elif adopt and record.subnet is not None:
            network = record.subnet
        else:
            network = ctx.hooks.allocate_subnet(bridge=ctx.bridge_name, pool=ctx.pool,
                                                reserved=reserved)
        wanted_bridge = ctx.bridge(network)
        if found_bridge is not None and not found_bridge.owned and not adopt:
            raise BackendError(
                f"A bridge named {ctx.bridge_name!r} exists that Locker did not create (it "
                f"lacks the alias locker:{ctx.project.name}); remove or rename it.")
        if found_bridge is None:
            # The intent is recorded first: a command killed between creating
            # the bridge and marking it as Locker's adopts it next time.
            journal.unless_dry(lambda: ctx.remember(
                creating_bridge=True, bridge=ctx.bridge_name, subnet=network))
        lacks6 = found_bridge is not None and wanted_bridge.interface6 is not None \
            and wanted_bridge.interface6 not in found_bridge.addresses6
        if found_bridge is None or not found_bridge.owned or not found_bridge.up \
                or found_bridge.network is None or not found_bridge.route_localnet or lacks6:
            verb = ("created" if found_bridge is None else
                    "adopted" if not found_bridge.owned else
                    "brought up" if not found_bridge.up or found_bridge.network is None
                    else "set route_localnet on" if not found_bridge.route_localnet
                    else "gave IPv6 to")
            state = journal.change(
                Change(ctx.project.name, verb, "bridge",
                       f"{ctx.bridge_name} {wanted_bridge.interface}"),
                lambda: ctx.hooks.ensure_bridge(bridge=wanted_bridge, adopt=adopt),
                simulated=BridgeState(ctx.bridge_name, (wanted_bridge.interface,), True,
                                      addresses6=tuple(filter(None, [wanted_bridge.interface6]))))
        else:
            state = found_bridge
        bridge = ctx.bridge(state.network or network)
        journal.unless_dry(lambda: ctx.remember(
            creating_bridge=False, bridge=ctx.bridge_name, subnet=bridge.network,
            firewall=ctx.firewall_name, link=ctx.link_name))
        with6 = bridge.network6 is not None
        forwarding = Change(ctx.project.name, "set",
                            "net.ipv4.ip_forward=1" + (" (and IPv6 forwarding)" if with6 else ""),
                            "(forwarding was off in this network namespace)")
        if ctx.ip_forwarding_off() if journal.dry_run \
                else ctx.hooks.ensure_ip_forwarding(ipv6=with6):
            journal.record(forwarding)
        ra = ctx.ra_interfaces() if with6 else []
        current = replace(read_network(ctx, facts), bridge=state)
        plan = diff.repair(compute_diff(ctx, current), {diff.NAT, diff.CHAINS},
                           bridge=bridge)
        apply(ctx, plan)
    ensure_dns(ctx, bridge)
    if ra:
        ctx.warn(f"IPv6 forwarding is on, so {', '.join(ra)} (accept_ra=1) no longer take "
                 "router advertisements: if this host gets its own IPv6 address or route "
                 "that way, set net.ipv6.conf.IFACE.accept_ra=2 on them (Locker does not "
                 "change them).")
    for overlap in current.overlaps:
        ctx.warn(f"The subnet {bridge.network} of bridge {ctx.bridge_name} overlaps "
                 f"{overlap}, which appeared after the bridge; traffic to those addresses "
                 f"may go the wrong way. Move one of them (`locker cleanup` gives the "
                 f"project a new subnet on its next start).")
    for blocker in current.blockers:
        ctx.warn(f"{blocker.what}, so the project's forwards are dead; fix: {blocker.fix}")
    return bridge, current


# -------------------------------------------------------------- the rules

def apply(ctx: Context, plan: Repair) -> None:
    """Make the plan's hook calls, stale first, each reported through the
    journal; then tell the observers."""
    project, hooks, journal = ctx.project.name, ctx.hooks, ctx.journal
    journal.changes_many(
        [Change(diff.subject_of(r), "removed", "rule", f"{r.comment} ({r.location}: {r.text})")
         for r in plan.unrecognised],
        lambda: hooks.remove_unrecognised(project=project))
    journal.changes_many([_nat_change(b, "removed") for b in plan.remove_nat],
                         lambda: hooks.remove_nat(bridges=list(plan.remove_nat)))
    journal.changes_many([_forward_change(f, "removed") for f in plan.remove_forwards],
                         lambda: hooks.remove_forward(forwards=list(plan.remove_forwards)))
    journal.changes_many([_link_change(k, "removed") for k in plan.remove_links],
                         lambda: hooks.remove_link(links=list(plan.remove_links)))
    nat_changes = [_nat_change(b, "added") for b in plan.add_nat]
    if plan.entry:
        verb = "restored" if plan.entry == diff.PARTIAL else "added"
        nat_changes.insert(0, Change(project, verb, "Locker's chains and jumps"))
    nat_bridges = list(plan.add_nat)
    if plan.entry and not nat_bridges:
        nat_bridges = [plan.entry_bridge]
    journal.changes_many(nat_changes, lambda: hooks.add_nat(bridges=nat_bridges))
    journal.changes_many([_forward_change(f, "added") for f in plan.add_forwards],
                         lambda: hooks.add_forward(forwards=list(plan.add_forwards)))
    journal.changes_many([_link_change(k, "added") for k in plan.add_links],
                         lambda: hooks.add_link(links=list(plan.add_links)))
    if plan and not journal.dry_run:
        emit(ctx.manager, "rules_changed", ctx.warn, project=project,
             added=Ruleset(nat=frozenset(plan.add_nat), forwards=frozenset(plan.add_forwards),
                           links=frozenset(plan.add_links)),
             removed=Ruleset(nat=frozenset(plan.remove_nat),
                             forwards=frozenset(plan.remove_forwards),
                             links=frozenset(plan.remove_links)))


def removal_changes(project: str, rules: Ruleset, verb: str = "removed") -> list[Change]:
    """A change for everything of ``rules`` that goes at once (``cleanup``,
    ``--migrate``): complete values, partial ones, unrecognised rules."""
    changes = [_nat_change(b, verb) for b in sorted(rules.nat, key=str)]
    changes += [_forward_change(f, verb) for f in sorted(rules.forwards, key=Forward.sort_key)]
    changes += [_link_change(k, verb) for k in sorted(rules.links, key=Link.sort_key)]
    changes += [Change(project, verb, "partial rules of", str(v))
                for v in sorted(rules.partial, key=str)]
    changes += [Change(diff.subject_of(r), verb, "rule", f"{r.comment} ({r.location})")
                for r in rules.unrecognised]
    return changes


def _forward_change(forward: Forward, verb: str) -> Change:
    return Change(forward.container, verb, "forward", str(forward))


def _link_change(link: Link, verb: str) -> Change:
    return Change(link.container, verb, "link", f"to {link.peer} ({link.container_ip} <-> "
                                                 f"{link.peer_ip})")


def _nat_change(bridge: Bridge, verb: str) -> Change:
    policy = "default deny, isolated" if bridge.isolated else "default deny"
    six = f" and {bridge.network6}" if bridge.network6 is not None else ""
    return Change(bridge.project, verb, "network rules",
                  f"for {bridge.network}{six} via {bridge.name} (masquerade, forwarding, "
                  f"{policy})")


def repair(ctx: Context, facts: Facts, kinds: Collection[str],
           containers: Collection[str] | None) -> Facts:
    """Under the host lock: read the project's rules, bring the items of
    ``kinds`` of ``containers`` (None: all, orphans too) in place, and
    remember the forwards in the host state. Returns the facts read."""
    with ctx.lock():
        current = read_network(ctx, facts, rules_only=True)
        result = compute_diff(ctx, current)
        plan = diff.repair(result, kinds, containers, bridge=_bridge_value(ctx, current.bridge))
        apply(ctx, plan)
        ctx.journal.unless_dry(lambda: ctx.remember(
            forwards=_forwards_after(current.rules, plan),
            containers=dict(current.configured),
            firewall=ctx.firewall_name, link=ctx.link_name))
    update_dns_names(ctx, current)
    return current


def remove(ctx: Context, facts: Facts, containers: Collection[str],
           forwards: bool = True, links: bool = True) -> None:
    """Under the host lock: remove every forward and link rule of
    ``containers``, also partial ones."""
    with ctx.lock():
        current = read_network(ctx, facts, rules_only=True)
        plan = diff.removal(current.rules, containers, forwards, links)
        apply(ctx, plan)
        ctx.journal.unless_dry(lambda: ctx.remember(
            forwards=_forwards_after(current.rules, plan)))
    update_dns_names(ctx, replace(current, states={
        n: (STOPPED if n in containers else s) for n, s in current.states.items()}))


def _forwards_after(rules: Ruleset, plan: Repair) -> tuple[Forward, ...]:
    kept = (set(rules.forwards) - set(plan.remove_forwards)) | set(plan.add_forwards)
    return tuple(sorted(kept, key=Forward.sort_key))


# ------------------------------------------------------- the DNS forwarder

def ensure_dns(ctx: Context, bridge: Bridge) -> None:
    """Start the project's DNS forwarder on the bridge's address, unless it
    runs or the host file turned it off."""
    if ctx.dns is not None and ctx.dns.pid() is None:
        ctx.journal.change(Change(ctx.project.name, "started", "DNS forwarder",
                                  f"on {bridge.gateway}"),
                           lambda: ctx.dns.start(bridge.gateway))


def dns_names(ctx: Context, facts: Facts) -> dict[IPv4Address, tuple[str, ...]]:
    """What the forwarder answers: each running container by its name,
    ``NAME.PROJECT`` and fqdn."""
    names = {}
    for name in sorted(facts.running):
        address = facts.addresses.get(name)
        if address is not None:
            fqdn = ctx.project.container(name).fqdn
            names[address] = tuple(dict.fromkeys(
                n for n in (fqdn, f"{name}.{ctx.project.name}", name) if n))
    return names


def update_dns_names(ctx: Context, facts: Facts) -> None:
    """Give the forwarder the running containers' names, when it runs (or,
    in a dry run, would have been started by this command)."""
    started_now = any((c.verb, c.what) == ("started", "DNS forwarder")
                      for c in ctx.journal.changes)
    if ctx.dns is None or not (started_now or ctx.dns.pid() is not None):
        return
    names = dns_names(ctx, facts)
    if ctx.dns.hosts_text(names) != ctx.dns.current_hosts():
        ctx.journal.change(Change(ctx.project.name, "updated", "DNS names",
                                  f"({len(names)} running container(s))"),
                           lambda: ctx.dns.write_hosts(names) and ctx.dns.reload())


def stop_dns(ctx: Context) -> None:
    if ctx.dns is not None and ctx.dns.pid() is not None:
        ctx.journal.change(Change(ctx.project.name, "stopped", "DNS forwarder"), ctx.dns.stop)


def assign(ctx: Context, network: IPv4Network, facts: Facts) -> dict[str, IPv4Interface]:
    """An address for every container of the file that exists."""
    existing = [n for n, s in facts.states.items() if s != ABSENT]
    return planner.assign_addresses(existing, facts.configured, network)


# ---------------------------------------------------- the containers' hosts

def write_hosts(ctx: Context, facts: Facts, scope: Collection[str], keep: bool = True) -> None:
    """Rewrite Locker's lines in the /etc/hosts of every existing container
    that is in ``scope`` or links to one in it: its own fqdn, and its linked
    peers, but (``keep`` False) none of the links of ``scope``. A container
    whose file is refused is reported, and the others are still written."""
    ips = facts.addresses
    unlinked = () if keep else scope
    failures: list[LockerError] = []
    for spec in ctx.project.containers:
        touched = spec.name in scope or any(link.name in scope for link in spec.links)
        if not touched or facts.states.get(spec.name, ABSENT) == ABSENT:
            continue
        try:
            write_file(ctx, spec.name, "/etc/hosts", lambda current: planner.hosts_file(
                current, planner.hosts_entries(ctx.project, spec.name, ips, unlinked,
                                               network6=_network6(ctx, facts))))
        except LockerError as exc:
            failures.append(ContainerError(spec.name, exc))
    raise_all(failures)


def _network6(ctx: Context, facts: Facts) -> IPv6Network | None:
    """The project's /64 when it has IPv6 (from a container's configured
    IPv4 subnet: the /64 follows the /24)."""
    if not ctx.ipv6:
        return None
    network = next((a.network for a in facts.configured.values() if a is not None), None)
    return ctx.bridge(network).network6 if network is not None else None


def write_file(ctx: Context, name: str, path: str, make) -> None:
    """Rewrite a file of a container when its content would change."""
    lxc = ctx.lxc(name)
    current = ctx.runtime.read_file(lxc, path)
    wanted = make(current)
    if wanted != current:
        ctx.journal.change(Change(name, "rewrote", path),
                           lambda: ctx.runtime.write_file(lxc, path, wanted))
