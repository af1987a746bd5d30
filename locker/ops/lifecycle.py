"""Creating, starting, stopping and removing a project's containers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from locker import planner
from locker.context import Context
from locker.errors import ConfigError, LockerError
from locker.model import Bridge
from locker.ops import host_names, network
from locker.ops.network import FORWARDS, LINKS
from locker.plugins import emit
from locker.project import CloneSource
from locker.runtime import ABSENT, FROZEN, RUNNING, STOPPED


@dataclass(frozen=True)
class StartOptions:
    restart: bool = False
    ports: bool = True
    links: bool = True
    add_hosts: bool = False
    timeout: float = 30.0


def each(ctx: Context, containers: Sequence[str], action: Callable[[str], None]) -> None:
    """Run ``action`` for every container, then report every failure
    together: one container's failure does not stop the others. The error
    keeps the gravest exit status of the failures (2 for a ConfigError)."""
    failures: list[LockerError] = []
    for name in containers:
        try:
            action(name)
        except LockerError as exc:
            failures.append(type(exc)(f"{name}: {exc}"))
    raise_all(failures)


def raise_all(failures: Sequence[LockerError]) -> None:
    """Raise one error holding every message, of the type whose exit status
    is the gravest."""
    if failures:
        worst = max(failures, key=lambda exc: exc.exit_status)
        raise type(worst)("\n".join(str(exc) for exc in failures))


def create(ctx: Context, containers: Sequence[str]) -> None:
    def create_one(name: str) -> None:
        lxc = ctx.lxc(name)
        if ctx.runtime.state(lxc) != ABSENT:
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
        ctx.runtime.create(lxc, spec.source, clone_from)
        ctx.say(f"{name}: created ({lxc})")

    each(ctx, _originals_first(ctx, containers), create_one)


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


def start(ctx: Context, containers: Sequence[str], options: StartOptions = StartOptions()) -> None:
    present = network.states(ctx)
    missing = [n for n in containers if present[n] == ABSENT]
    if missing:
        raise LockerError(f"{', '.join(missing)} do(es) not exist yet; run `locker create` first.")
    bridge = network.bring_up(ctx)
    failures: list[LockerError] = []

    def collect(action: Callable[[str], None], names: Sequence[str]) -> None:
        try:
            each(ctx, names, action)
        except LockerError as exc:
            failures.append(exc)

    to_start: list[str] = []

    def settle(name: str) -> None:
        """Thaw, or stop for --restart; note the containers to start."""
        lxc = ctx.lxc(name)
        state = ctx.runtime.state(lxc)
        if state == FROZEN:
            ctx.runtime.unfreeze(lxc)
            state = RUNNING
        if state == RUNNING and options.restart:
            ctx.runtime.stop(lxc, options.timeout)
            state = STOPPED
        if state == RUNNING:
            address = ctx.runtime.configured_address(lxc)
            ctx.say(f"{name}: running already" + (f" ({address.ip})" if address else ""))
        else:
            to_start.append(name)

    collect(settle, containers)
    # Addresses are handed out and written into the containers' configs
    # under the host lock, so two commands never give one address twice.
    with ctx.lock():
        existing = [n for n, state in present.items() if state != ABSENT]
        addresses = network.assign(ctx, bridge.network, existing)
        prepared: list[str] = []

        def prepare(name: str) -> None:
            _prepare(ctx, name, bridge, addresses)
            prepared.append(name)

        collect(prepare, to_start)
    started: list[str] = []

    def start_one(name: str) -> None:
        ctx.runtime.start(ctx.lxc(name), options.timeout)
        started.append(name)
        ctx.say(f"{name}: started ({addresses[name].ip})")

    # The containers that did start get their rules, host names and events
    # even when others failed; then every failure is reported together.
    try:
        collect(start_one, prepared)
    finally:
        try:
            _update_rules(ctx, containers, options.ports, options.links)
        except LockerError as exc:
            failures.append(exc)
    if options.add_hosts:
        host_names.write(ctx, {n: a.ip for n, a in addresses.items()})
    for name in started:
        emit(ctx.manager, "container_started", ctx.warn, project=ctx.project.name,
             container=name, address=addresses[name].ip)
    raise_all(failures)


def _prepare(ctx: Context, name: str, bridge: Bridge, addresses) -> None:
    """Write everything the container must find when it boots."""
    spec = ctx.project.container(name)
    lxc = ctx.lxc(name)
    hostname = spec.fqdn.split(".")[0] if spec.fqdn else None
    ctx.runtime.configure(
        lxc, bridge.name, addresses[name], bridge.gateway,
        mounts=[(v.host_dir, v.container_dir) for v in spec.volumes],
        cgroup=spec.cgroup, hostname=hostname)
    if spec.dns:
        servers = planner.nameservers(spec.dns, bridge.gateway, ctx.host_resolv())
        ctx.runtime.write_file(lxc, "/etc/resolv.conf", planner.resolv_conf(servers))
    if hostname:
        ctx.runtime.write_file(lxc, "/etc/hostname", hostname + "\n")
    ips = {n: a.ip for n, a in addresses.items()}
    current = ctx.runtime.read_file(lxc, "/etc/hosts")
    ctx.runtime.write_file(lxc, "/etc/hosts", planner.hosts_file(
        current, planner.hosts_entries(ctx.project, name, ips)))


def _update_rules(ctx: Context, containers: Sequence[str], ports: bool, links: bool) -> None:
    if ports:
        network.reconcile(ctx, FORWARDS, containers)
    if links:
        network.reconcile(ctx, LINKS, containers)


def stop(ctx: Context, containers: Sequence[str], timeout: float = 30.0,
         ports: bool = True, links: bool = True) -> None:
    """Remove the containers' forwards and links, then stop them."""
    try:
        if ports:
            network.reconcile(ctx, FORWARDS, containers, keep=False)
        if links:
            network.reconcile(ctx, LINKS, containers, keep=False)
    finally:
        def stop_one(name: str) -> None:
            lxc = ctx.lxc(name)
            state = ctx.runtime.state(lxc)
            if state == FROZEN:
                ctx.runtime.unfreeze(lxc)
            if state in (RUNNING, FROZEN):
                ctx.runtime.stop(lxc, timeout)
                ctx.say(f"{name}: stopped")
                emit(ctx.manager, "container_stopped", ctx.warn,
                     project=ctx.project.name, container=name)
            elif state == STOPPED:
                ctx.say(f"{name}: stopped already")
        each(ctx, containers, stop_one)


def remove(ctx: Context, containers: Sequence[str]) -> None:
    def remove_one(name: str) -> None:
        lxc = ctx.lxc(name)
        state = ctx.runtime.state(lxc)
        if state == ABSENT:
            ctx.say(f"{name}: does not exist")
        elif state != STOPPED:
            raise LockerError(f"{lxc} is {state.lower()}; run `locker stop {name}` first.")
        else:
            ctx.runtime.destroy(lxc)
            ctx.say(f"{name}: removed")

    each(ctx, containers, remove_one)


def freeze(ctx: Context, containers: Sequence[str], thaw: bool = False) -> None:
    want, verb = (FROZEN, "frozen") if not thaw else (RUNNING, "thawed")
    source = RUNNING if not thaw else FROZEN

    def one(name: str) -> None:
        lxc = ctx.lxc(name)
        state = ctx.runtime.state(lxc)
        if state == want:
            return
        if state != source:
            raise LockerError(f"{lxc} is {state.lower()}, not {source.lower()}.")
        (ctx.runtime.unfreeze if thaw else ctx.runtime.freeze)(lxc)
        ctx.say(f"{name}: {verb}")

    each(ctx, containers, one)


def apply_cgroup(ctx: Context, containers: Sequence[str]) -> None:
    """Set the cgroup values of running containers now; they are written to
    the container's configuration at every start."""
    def one(name: str) -> None:
        settings = ctx.project.container(name).cgroup
        lxc = ctx.lxc(name)
        if settings and network.is_up(ctx.runtime.state(lxc)):
            ctx.runtime.apply_cgroup(lxc, settings)
            ctx.say(f"{name}: " + ", ".join(f"{k}={v}" for k, v in settings))

    each(ctx, containers, one)
