"""Creating, starting, stopping and removing a project's containers.

Every change goes through the command's journal (``ctx.journal``), so that
``--dry-run`` takes the same path and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from locker import diff, faults, foreign, planner
from locker.context import Context
from locker.errors import ConfigError, ContainerError, LockerError, raise_all
from locker.journal import Change
from locker.model import Bridge
from locker.ops import host_names, network
from locker.ops.network import Facts
from locker.plugins import emit
from locker.project import CloneSource
from locker.runtime import ABSENT, FROZEN, RUNNING, STOPPED, UNKNOWN, state_reason

T = TypeVar("T")

RULE_KINDS = {"ports": diff.FORWARD, "links": diff.LINK}


@dataclass(frozen=True)
class StartOptions:
    restart: bool = False
    ports: bool = True
    links: bool = True
    add_hosts: bool = False
    timeout: float = 30.0


def each(containers: Sequence[str], action: Callable[[str], T],
         failures: list[LockerError], parallel: int = 1) -> dict[str, T]:
    """Run ``action`` for every container, up to ``parallel`` at once; one
    container's failure does not stop the others. Returns the results of
    those that succeeded, in the order of ``containers``; appends a
    ``ContainerError`` (keeping the original) for each that failed."""
    def attempt(name: str) -> tuple[str, T | None, LockerError | None]:
        try:
            return name, action(name), None
        except LockerError as exc:
            return name, None, ContainerError(name, exc)

    if parallel > 1 and len(containers) > 1:
        with ThreadPoolExecutor(max_workers=min(parallel, len(containers))) as pool:
            outcomes = list(pool.map(attempt, containers))
    else:
        outcomes = [attempt(name) for name in containers]
    results = {}
    for name, result, error in outcomes:
        if error is None:
            results[name] = result
        else:
            failures.append(error)
    return results


def create(ctx: Context, containers: Sequence[str]) -> None:
    facts = network.read_containers(ctx)

    def create_one(name: str) -> None:
        lxc = ctx.lxc(name)
        if facts.states[name] != ABSENT:
            ctx.say(f"{name}: exists already ({lxc})")
            return
        spec = ctx.project.container(name)
        if spec.source is None:
            raise ConfigError(f"{name} has no template, clone or download in "
                              f"{ctx.project.path}; add one, or create {lxc} by hand.")
        clone_from = None
        if isinstance(spec.source, CloneSource):
            original = spec.source.name
            clone_from = ctx.lxc(original) if original in ctx.project.container_names else original
        ctx.journal.change(Change(name, "created", "container", f"({lxc})"),
                           lambda: ctx.runtime.create(lxc, spec.source, clone_from))

    failures: list[LockerError] = []
    each(_originals_first(ctx, containers), create_one, failures)
    raise_all(failures)


def _originals_first(ctx: Context, containers: Sequence[str]) -> list[str]:
    """Containers that are clones of others in the project come after them,
    also a clone of a clone; otherwise the order stays."""
    def depth(name: str, seen: tuple[str, ...] = ()) -> int:
        source = ctx.project.container(name).source
        if (isinstance(source, CloneSource) and source.name in ctx.project.container_names
                and source.name not in seen):
            return 1 + depth(source.name, seen + (name,))
        return 0
    return sorted(containers, key=depth)


def check_ports_free(ctx: Context, containers: Sequence[str]) -> None:
    """Refuse (exit 2) host ports that another project of this host forwards."""
    problems = planner.port_conflicts(ctx.project, containers, ctx.others())
    if problems:
        raise ConfigError(f"{ctx.project.path}: {len(problems)} host port(s) are forwarded "
                          f"by another project already; nothing was changed.", problems)
    ports = [(p.host_port, p.protocol) for spec in ctx.project.containers
             if spec.name in containers for p in spec.ports]
    if ports:
        for warning in foreign.clashes(ports, ctx.foreign_dnats()):
            ctx.warn(warning)


def start(ctx: Context, containers: Sequence[str], options: StartOptions = StartOptions()) -> None:
    """Bridge and network rules, then the containers, then their rules, in
    phases that each return what the next needs."""
    facts = network.read_containers(ctx)
    missing = [n for n in containers if facts.states[n] == ABSENT]
    if missing:
        raise LockerError(f"{', '.join(missing)} do(es) not exist yet; run `locker create` first.")
    if options.ports:
        check_ports_free(ctx, containers)
    failures: list[LockerError] = []
    settled = each(containers, lambda n: _settle(ctx, n, facts.states[n], options), failures,
                   ctx.parallel)
    facts = replace(facts, states={**facts.states, **settled})
    to_start = [n for n, state in settled.items() if not network.is_up(state)]
    bridge, _ = network.bring_up(ctx, facts)
    addresses = _prepare_all(ctx, bridge, facts, to_start, failures)
    facts = replace(facts, configured={**facts.configured, **addresses})
    started = each([n for n in to_start if n in addresses],
                   lambda n: _start_one(ctx, n, addresses[n], options.timeout), failures,
                   ctx.parallel)
    facts = replace(facts, states={**facts.states, **{n: RUNNING for n in started}})
    kinds = {diff.RULE} | ({diff.FORWARD} if options.ports else set()) \
        | ({diff.LINK} if options.links else set())
    scope = None if set(containers) == set(ctx.project.container_names) else containers
    try:
        network.repair(ctx, facts, kinds, scope)
        rules_added = True
    except LockerError as exc:
        failures.append(exc)
        rules_added = False
    if options.add_hosts:
        host_names.write(ctx, {n: a for n, a in facts.addresses.items()})
    if rules_added and not ctx.journal.dry_run:  # the event says "started, its rules added"
        for name in started:
            emit(ctx.manager, "container_started", ctx.warn, project=ctx.project.name,
                 container=name, address=addresses[name].ip)
    raise_all(failures)


def _settle(ctx: Context, name: str, state: str, options: StartOptions) -> str:
    """Thaw, or stop for --restart; the state the container is left in. A
    container whose state cannot be read is left alone, rules and all."""
    lxc = ctx.lxc(name)
    if state == UNKNOWN:
        raise LockerError(f"its state cannot be read ({state_reason(state)}), so it is left "
                          f"as it is, its rules too; check `lxc-info -n {lxc}`.")
    if state == FROZEN:
        ctx.journal.change(Change(name, "thawed", "container"), lambda: ctx.runtime.unfreeze(lxc))
        state = RUNNING
    if state == RUNNING and options.restart:
        ctx.journal.change(Change(name, "stopped", "container", "(restart)"),
                           lambda: ctx.runtime.stop(lxc, options.timeout))
        state = STOPPED
    if state == RUNNING:
        ctx.say(f"{name}: running already")
    return state


def _prepare_all(ctx: Context, bridge: Bridge, facts: Facts, names: Sequence[str],
                 failures: list[LockerError]) -> dict:
    """Addresses are handed out and written into the containers' configs
    under the host lock, so two commands never give one address twice; the
    files inside the containers are written after it."""
    with ctx.lock():
        addresses = network.assign(ctx, bridge.network, facts)
        configured = each(names, lambda n: _configure(ctx, n, bridge, addresses[n]), failures)
    prepared = {n: addresses[n] for n in configured}
    ready = each(list(prepared), lambda n: _write_files(ctx, n, bridge, facts, addresses),
                 failures, ctx.parallel)
    return {n: prepared[n] for n in ready}


def _configure(ctx: Context, name: str, bridge: Bridge, address) -> None:
    spec = ctx.project.container(name)
    lxc = ctx.lxc(name)
    ctx.journal.change(
        Change(name, "configured", "container", f"(address {address} on {bridge.name})"),
        lambda: ctx.runtime.configure(
            lxc, bridge.name, address, bridge.gateway,
            mounts=[(v.host_dir, v.container_dir) for v in spec.volumes],
            cgroup=spec.cgroup, hostname=_hostname(spec)))


def _hostname(spec) -> str | None:
    return spec.fqdn.split(".")[0] if spec.fqdn else None


def _write_files(ctx: Context, name: str, bridge: Bridge, facts: Facts, addresses) -> None:
    """Everything the container must find when it boots."""
    spec = ctx.project.container(name)
    if spec.dns:
        servers = planner.nameservers(spec.dns, bridge.gateway, ctx.host_resolv())
        network.write_file(ctx, name, "/etc/resolv.conf",
                           lambda _: planner.resolv_conf(servers))
    hostname = _hostname(spec)
    if hostname:
        network.write_file(ctx, name, "/etc/hostname", lambda _: hostname + "\n")
    ips = {**facts.addresses, **{n: a.ip for n, a in addresses.items()}}
    network.write_file(ctx, name, "/etc/hosts", lambda current: planner.hosts_file(
        current, planner.hosts_entries(ctx.project, name, ips)))


def _start_one(ctx: Context, name: str, address, timeout: float) -> None:
    ctx.journal.change(Change(name, "started", "container", f"({address.ip})"),
                       lambda: ctx.runtime.start(ctx.lxc(name), timeout))


def stop(ctx: Context, containers: Sequence[str], timeout: float = 30.0,
         ports: bool = True, links: bool = True) -> None:
    """Stop the containers, then remove the rules of those that no longer
    run. In this order a `ports` running in between finds them stopped and
    adds nothing back."""
    facts = network.read_containers(ctx)
    failures: list[LockerError] = []
    stopped = each(containers, lambda n: stop_one(ctx, n, facts.states[n], timeout), failures,
                   ctx.parallel)
    faults.point("containers-stopped")
    down = [n for n in stopped if facts.states[n] != ABSENT]
    try:
        network.remove(ctx, facts, down, forwards=ports, links=links)
    except LockerError as exc:
        failures.append(exc)
    if not ctx.journal.dry_run:
        for name in stopped:
            if network.is_up(facts.states[name]):
                emit(ctx.manager, "container_stopped", ctx.warn,
                     project=ctx.project.name, container=name)
    raise_all(failures)


def stop_one(ctx: Context, name: str, state: str, timeout: float) -> None:
    """Stop a running, frozen or unknown container (lxc-stop may still reach
    the last: it is asked, and its rules go only when it stopped)."""
    lxc = ctx.lxc(name)
    if network.is_up(state) or state == UNKNOWN:
        ctx.journal.change(Change(name, "stopped", "container"),
                           lambda: ctx.runtime.stop(lxc, timeout))
    elif state == STOPPED:
        ctx.say(f"{name}: stopped already")


def remove(ctx: Context, containers: Sequence[str]) -> None:
    facts = network.read_containers(ctx)

    def remove_one(name: str) -> None:
        lxc = ctx.lxc(name)
        state = facts.states[name]
        if state == ABSENT:
            ctx.say(f"{name}: does not exist")
        elif state != STOPPED:
            raise LockerError(f"{lxc} is {state.lower()}; run `locker stop {name}` first.")
        else:
            ctx.journal.change(Change(name, "removed", "container", f"({lxc})"),
                               lambda: ctx.runtime.destroy(lxc))

    failures: list[LockerError] = []
    each(containers, remove_one, failures, ctx.parallel)
    raise_all(failures)


def freeze(ctx: Context, containers: Sequence[str], thaw: bool = False) -> None:
    want, verb = (FROZEN, "frozen") if not thaw else (RUNNING, "thawed")
    source = RUNNING if not thaw else FROZEN
    facts = network.read_containers(ctx)

    def one(name: str) -> None:
        lxc = ctx.lxc(name)
        state = facts.states[name]
        if state == want:
            ctx.say(f"{name}: {verb} already" if not thaw else f"{name}: running already")
            return
        if state != source:
            raise LockerError(f"{lxc} is {state.lower()}, not {source.lower()}.")
        action = ctx.runtime.unfreeze if thaw else ctx.runtime.freeze
        ctx.journal.change(Change(name, verb, "container"), lambda: action(lxc))

    failures: list[LockerError] = []
    each(containers, one, failures, ctx.parallel)
    raise_all(failures)


def apply_cgroup(ctx: Context, containers: Sequence[str]) -> None:
    """Set the cgroup values of running containers now; they are written to
    the container's configuration at every start."""
    facts = network.read_containers(ctx)

    def one(name: str) -> None:
        settings = ctx.project.container(name).cgroup
        lxc = ctx.lxc(name)
        if settings and network.is_up(facts.states[name]):
            ctx.journal.change(
                Change(name, "set", "cgroup", ", ".join(f"{k}={v}" for k, v in settings)),
                lambda: ctx.runtime.apply_cgroup(lxc, settings))

    failures: list[LockerError] = []
    each(containers, one, failures, ctx.parallel)
    raise_all(failures)


def reconcile(ctx: Context, command: str, containers: Sequence[str] | None,
              keep: bool = True) -> None:
    """``ports``/``links`` (``keep``: repair) and ``rmports``/``rmlinks``
    (remove all) for ``containers`` (None: all, orphans too)."""
    kind = RULE_KINDS[command]
    facts = network.read_containers(ctx)
    if keep:
        if kind == diff.FORWARD:
            check_ports_free(ctx, containers or ctx.project.container_names)
        network.repair(ctx, facts, {kind, diff.CHAINS, diff.RULE}, containers)
    else:
        scope = containers if containers is not None else \
            list(ctx.project.container_names) + list(facts.orphans)
        network.remove(ctx, facts, scope, forwards=kind == diff.FORWARD,
                       links=kind == diff.LINK)
    if kind == diff.LINK:
        network.write_hosts(ctx, facts, containers or ctx.project.container_names, keep=keep)
