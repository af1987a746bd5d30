"""Creating, starting, stopping and removing a project's containers.

Every change goes through the command's journal (``ctx.journal``), so that
``--dry-run`` takes the same path and changes nothing.

Every command reports each container in the same words: the change it made
(``web: started (10.1.1.2)``), or why it made none: ``web: already
running``, ``web: already stopped``, ``web: already frozen``, ``web:
already created``, ``web: not created``. A container that is not created
is reported in its place, the others are worked on, and the command then
fails (exit 1) naming them (``NotCreated``), in every command alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from ipaddress import IPv6Interface
from typing import TypeVar

from locker import cgroups, diff, faults, foreign, ipv6, planner
from locker.context import Context
from locker.errors import ConfigError, ContainerError, LockerError, NotCreated, raise_all
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


#: What a container's action (see ``each``) returns for a container that
#: does not exist, once it has been reported in its place.
NOT_CREATED = object()


def not_created(ctx: Context, name: str) -> object:
    """Report a container that does not exist, in its place; returns
    ``NOT_CREATED``, the result of its action."""
    ctx.say(f"{name}: not created")
    return NOT_CREATED


def not_created_in(results: Mapping[str, object]) -> list[str]:
    """The containers whose action found them not created, in order."""
    return [name for name, result in results.items() if result is NOT_CREATED]


def create(ctx: Context, containers: Sequence[str]) -> list[str]:
    """Create the containers that do not exist, originals before their
    clones, one after the other; returns those created (or, in a dry run,
    those that would be)."""
    facts = network.read_containers(ctx)
    made: list[str] = []
    failures: list[LockerError] = []
    for name in _originals_first(ctx, containers):
        try:
            if _create_one(ctx, facts, name, made):
                made.append(name)
        except LockerError as exc:
            failures.append(ContainerError(name, exc))
    raise_all(failures)
    return made


def _create_one(ctx: Context, facts: network.Facts, name: str, made: Sequence[str]) -> bool:
    """Create one container; False when it exists already. ``made``: those
    this command created before it (a clone's original among them is
    stopped, whatever ``facts`` read before)."""
    lxc = ctx.lxc(name)
    if facts.states[name] != ABSENT:
        ctx.say(f"{name}: already created ({lxc})")
        return False
    spec = ctx.project.container(name)
    if spec.source is None:
        raise ConfigError(f"{name} has no template, clone or download in "
                          f"{ctx.project.path}; add one, or create {lxc} by hand.")
    clone_from = None
    if isinstance(spec.source, CloneSource):
        original = spec.source.name
        ours = original in ctx.project.container_names
        clone_from = ctx.lxc(original) if ours else original
        state = facts.states[original] if ours and original not in made \
            else ctx.runtime.state(clone_from)
        if network.is_up(state):
            stop = f"locker stop {original}" if ours else f"lxc-stop -n {clone_from}"
            raise LockerError(f"cannot clone {clone_from} while it runs (lxc-copy copies "
                              f"a stopped container); run `{stop}` first.")
    # a download may take minutes: a signal interrupts it (the runtime
    # removes what it left), but no other change
    ctx.journal.change(Change(name, "created", "container", f"({lxc})"),
                       lambda: ctx.runtime.create(lxc, spec.source, clone_from),
                       interruptible=True)
    return True


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
    ports = [(port, p.protocol) for spec in ctx.project.containers
             if spec.name in containers for p in spec.ports
             for port in range(p.host_port, p.host_end + 1)]
    if ports:
        for warning in foreign.clashes(ports, ctx.foreign_dnats()):
            ctx.warn(warning)


def start(ctx: Context, containers: Sequence[str], options: StartOptions = StartOptions(),
          created: Sequence[str] = ()) -> None:
    """Bridge and network rules, then the containers, then their rules, in
    phases that each return what the next needs. Containers not created are
    reported, the others started, and then the command fails (exit 1).
    ``created``: containers a dry run of ``up`` would have created, taken
    as created and stopped."""
    cgroup = cgroup_settings(ctx, containers)  # refused before anything is changed
    facts = network.read_containers(ctx)
    assumed = [n for n in created if facts.states.get(n) == ABSENT and ctx.journal.dry_run]
    facts = replace(facts, states={**facts.states, **{n: STOPPED for n in assumed}})
    missing = [n for n in containers if facts.states[n] == ABSENT]
    for name in missing:
        not_created(ctx, name)
    containers = [n for n in containers if n not in missing]
    if not containers:  # nothing to start: the network is not brought up for nothing
        raise NotCreated(missing)
    if options.ports:
        check_ports_free(ctx, containers)
    failures: list[LockerError] = []
    settled = each(containers, lambda n: _settle(ctx, n, facts.states[n], options), failures,
                   ctx.parallel)
    facts = replace(facts, states={**facts.states, **settled})
    to_start = [n for n, state in settled.items() if not network.is_up(state)]
    bridge, _ = network.bring_up(ctx, facts)
    addresses = _prepare_all(ctx, bridge, facts, to_start, cgroup, failures, assumed)
    facts = replace(facts, configured={**facts.configured, **addresses})
    started = each([n for n in to_start if n in addresses],
                   lambda n: _start_one(ctx, n, addresses[n], options.timeout), failures,
                   ctx.parallel)
    facts = replace(facts, states={**facts.states, **{n: RUNNING for n in started}})
    kinds = {diff.RULE} | ({diff.FORWARD} if options.ports else set()) \
        | ({diff.LINK} if options.links else set())
    scope = None if set(containers) | set(missing) == set(ctx.project.container_names) \
        else containers
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
    if missing:
        failures.append(NotCreated(missing))
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
        ctx.say(f"{name}: already running")
    return state


def _prepare_all(ctx: Context, bridge: Bridge, facts: Facts, names: Sequence[str],
                 cgroup: Mapping[str, tuple], failures: list[LockerError],
                 assumed: Sequence[str] = ()) -> dict:
    """Addresses are handed out and written into the containers' configs
    under the host lock, so two commands never give one address twice; the
    files inside the containers are written after it."""
    with ctx.lock():
        addresses = network.assign(ctx, bridge.network, facts)
        configured = each(names, lambda n: _configure(ctx, n, bridge, addresses[n], cgroup[n]),
                          failures)
    prepared = {n: addresses[n] for n in configured}
    ready = each(list(prepared),
                 lambda n: _write_files(ctx, n, bridge, facts, addresses, n not in assumed),
                 failures, ctx.parallel)
    return {n: prepared[n] for n in ready}


def _configure(ctx: Context, name: str, bridge: Bridge, address, cgroup: tuple) -> None:
    spec = ctx.project.container(name)
    lxc = ctx.lxc(name)
    ctx.journal.change(
        Change(name, "configured", "container", f"(address {address} on {bridge.name})"),
        lambda: ctx.runtime.configure(
            lxc, bridge.name, address, bridge.gateway,
            mounts=spec.volumes,
            cgroup=cgroup, hostname=_hostname(spec), **_ipv6(bridge, address)))


def _ipv6(bridge: Bridge, address) -> dict:
    """The IPv6 arguments of ``configure`` when the project has IPv6."""
    if bridge.network6 is None:
        return {}
    own = ipv6.container_address(bridge.network6, address.ip)
    return {"address6": IPv6Interface((own, 64)), "gateway6": bridge.gateway6}


#: The end of the line that gives a container without ``fqdn`` its own
#: name in its /etc/hosts. Not ``planner.HOSTS_MARK``: the link lines
#: that ``links`` and ``rmlinks`` rewrite keep it as it is.
SELF_MARK = "# locker: own name"


def _hostname(spec) -> str:
    """The fqdn's first label, or else the container's own name (a valid
    hostname: names have no underscore)."""
    return spec.fqdn.split(".")[0] if spec.fqdn else spec.name


def with_own_name(text: str, name: str, ip, has_fqdn: bool, ip6=None) -> str:
    """``/etc/hosts`` with the container's own line (``IP NAME``) after the
    localhost line, replacing the one written before, and one for its IPv6
    address ``ip6`` (a project with IPv6); a container with an fqdn has its
    own lines among Locker's already."""
    lines = [line for line in text.splitlines() if not line.endswith(SELF_MARK)]
    if not has_fqdn:
        at = next((i + 1 for i, line in enumerate(lines)
                   if line.split()[:1] == ["127.0.0.1"]), 0)
        own = [f"{address}\t{name}\t{SELF_MARK}" for address in (ip, ip6) if address]
        lines[at:at] = own
    return "\n".join(lines) + "\n"


def _write_files(ctx: Context, name: str, bridge: Bridge, facts: Facts, addresses,
                 exists: bool = True) -> None:
    """Everything the container must find when it boots. ``exists`` False:
    a dry run of ``up`` for a container it would create, whose files are
    not there to read yet (a new container's files are all written)."""
    def write_file(name, path, make):
        if exists:
            network.write_file(ctx, name, path, make)
        else:
            ctx.journal.change(Change(name, "rewrote", path), lambda: None)

    spec = ctx.project.container(name)
    if spec.dns:
        servers = planner.nameservers(spec.dns, bridge.gateway, ctx.host_resolv())
        write_file(name, "/etc/resolv.conf", lambda _: planner.resolv_conf(servers))
    hostname = _hostname(spec)
    write_file(name, "/etc/hostname", lambda _: hostname + "\n")
    ips = {**facts.addresses, **{n: a.ip for n, a in addresses.items()}}
    write_file(name, "/etc/hosts", lambda current: with_own_name(
        planner.hosts_file(current, planner.hosts_entries(ctx.project, name, ips,
                                                          network6=bridge.network6)),
        name, ips[name], bool(spec.fqdn),
        ipv6.container_address(bridge.network6, ips[name]) if bridge.network6 else None))


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

    def one(name: str) -> object:
        if facts.states[name] == ABSENT:
            return not_created(ctx, name)
        return stop_one(ctx, name, facts.states[name], timeout)
    stopped = each(containers, one, failures, ctx.parallel)
    missing = not_created_in(stopped)
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
    if missing:
        failures.append(NotCreated(missing))
    raise_all(failures)


def stop_one(ctx: Context, name: str, state: str, timeout: float) -> None:
    """Stop a running, frozen or unknown container (lxc-stop may still reach
    the last: it is asked, and its rules go only when it stopped)."""
    lxc = ctx.lxc(name)
    if network.is_up(state) or state == UNKNOWN:
        ctx.journal.change(Change(name, "stopped", "container"),
                           lambda: ctx.runtime.stop(lxc, timeout))
    elif state == STOPPED:
        ctx.say(f"{name}: already stopped")


def remove(ctx: Context, containers: Sequence[str], force: bool = False,
           timeout: float = 30.0, missing_ok: bool = False) -> None:
    """Delete stopped containers; ``force``: stop running ones first (and
    remove their rules, as ``stop`` does). ``missing_ok`` (``down --rm``):
    a container not created is no failure."""
    facts = network.read_containers(ctx)
    if force:
        up = [n for n in containers if network.is_up(facts.states[n])
              or facts.states[n] == UNKNOWN]
        if up:
            stop(ctx, up, timeout)
            facts = network.read_containers(ctx) if not ctx.journal.dry_run else replace(
                facts, states={**facts.states, **{n: STOPPED for n in up}})

    def remove_one(name: str) -> object:
        lxc = ctx.lxc(name)
        state = facts.states[name]
        if state == ABSENT:
            return not_created(ctx, name)
        if state != STOPPED:
            raise LockerError(f"cannot remove it: it is {state.lower()}; run "
                              f"`locker stop {name}` first, or `locker rm --force {name}`.")
        return ctx.journal.change(Change(name, "removed", "container", f"({lxc})"),
                                  lambda: ctx.runtime.destroy(lxc))

    failures: list[LockerError] = []
    missing = not_created_in(each(containers, remove_one, failures, ctx.parallel))
    _forget_if_nothing_left(ctx)
    if missing and not missing_ok:
        failures.append(NotCreated(missing))
    raise_all(failures)


def _forget_if_nothing_left(ctx: Context) -> None:
    """A project without containers and without a network leaves no record."""
    if ctx.journal.dry_run or ctx.state is None:
        return
    record = ctx.state.load(ctx.project.name)
    if record is not None and record.subnet is None and all(
            ctx.runtime.state(ctx.lxc(n)) == ABSENT for n in ctx.project.container_names):
        with ctx.lock():
            ctx.forget()


def freeze(ctx: Context, containers: Sequence[str], thaw: bool = False) -> None:
    want, verb = (FROZEN, "frozen") if not thaw else (RUNNING, "thawed")
    source = RUNNING if not thaw else FROZEN
    facts = network.read_containers(ctx)

    def one(name: str) -> object:
        lxc = ctx.lxc(name)
        state = facts.states[name]
        if state == ABSENT:
            return not_created(ctx, name)
        if state == want:
            ctx.say(f"{name}: already {'frozen' if not thaw else 'running'}")
            return None
        if state != source:
            command = "freeze" if not thaw else "unfreeze"
            hint = f"run `locker start {name}` first" if state == STOPPED \
                else f"check `lxc-info -n {lxc}`"
            raise LockerError(f"cannot {command} it: it is {state.lower()}; {hint}.")
        action = ctx.runtime.unfreeze if thaw else ctx.runtime.freeze
        return ctx.journal.change(Change(name, verb, "container"), lambda: action(lxc))

    failures: list[LockerError] = []
    missing = not_created_in(each(containers, one, failures, ctx.parallel))
    if missing:
        failures.append(NotCreated(missing))
    raise_all(failures)


def cgroup_settings(ctx: Context, containers: Sequence[str]) -> dict[str, tuple]:
    """Each container's cgroup settings for the host's cgroup version (see
    ``locker.cgroups.for_project``)."""
    return cgroups.for_project(ctx.project, containers, ctx.cgroup2())


def apply_cgroup(ctx: Context, containers: Sequence[str]) -> None:
    """Set the cgroup values of running containers now; they are written to
    the container's configuration at every start."""
    facts = network.read_containers(ctx)
    settings_of = cgroup_settings(ctx, containers)

    def one(name: str) -> object:
        settings = settings_of[name]
        lxc = ctx.lxc(name)
        if facts.states[name] == ABSENT:
            return not_created(ctx, name)
        if settings and network.is_up(facts.states[name]):
            return ctx.journal.change(
                Change(name, "set", "cgroup", ", ".join(str(s) for s in settings)),
                lambda: ctx.runtime.apply_cgroup(lxc, settings))
        return None

    failures: list[LockerError] = []
    missing = not_created_in(each(containers, one, failures, ctx.parallel))
    if missing:
        failures.append(NotCreated(missing))
    raise_all(failures)


def up(ctx: Context, containers: Sequence[str], options: StartOptions = StartOptions()) -> None:
    """``up``: create what is missing, then start everything (the
    containers that could not be created are reported by ``start``)."""
    failures: list[LockerError] = []
    created: list[str] = []
    try:
        created = create(ctx, containers)
    except LockerError as exc:
        failures.append(exc)
    try:
        start(ctx, containers, options, created=created)
    except LockerError as exc:
        failures.append(exc)
    raise_all(failures)


def down(ctx: Context, timeout: float = 30.0, keep_orphans: bool = False,
         remove_containers: bool = False) -> None:
    """``down``: stop every container, remove the project's rules and bridge
    (``cleanup``); ``remove_containers`` (``--rm``): then delete them."""
    from locker.ops.cleanup import cleanup

    cleanup(ctx, timeout, keep_orphans)
    if remove_containers:
        facts = network.read_containers(ctx)
        names = [n for n in ctx.project.container_names if facts.states[n] != ABSENT]
        if ctx.journal.dry_run:  # as stopped, as cleanup would have left them
            for name in names:
                ctx.journal.change(Change(name, "removed", "container", f"({ctx.lxc(name)})"),
                                   lambda: None)
        else:
            remove(ctx, names, missing_ok=True)


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
