"""In-memory stand-ins for the kernel and LXC, for tests of the core's logic.

They keep the hooks' promises (idempotent, batches, list back what was
added) without touching anything, so that the planner and the operations
can be tested without root. They are not backends for real use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from locker.errors import BackendError, LockerError
from locker.hookspecs import hookimpl
from locker.model import Availability, Blocker, Bridge, BridgeState, Forward, Link, Ruleset
from locker.names import bridge_name
from locker.project import CloneSource, Source
from locker.runtime import ABSENT, FROZEN, RUNNING, STOPPED, Observed
from locker.subnets import DEFAULT_POOL, first_free


class MemoryFirewall:
    """A firewall backend whose kernel is a Ruleset held in memory."""

    locker_api = 2  # the plugin API it is written for (locker.plugins.PLUGIN_API)

    def __init__(self) -> None:
        self.rules = Ruleset()
        self.transactions = 0
        self.fail_next: str | None = None
        self.blockers: list[Blocker] = []

    def _commit(self, **changes) -> None:
        if self.fail_next:
            message, self.fail_next = self.fail_next, None
            raise BackendError(message)
        self.transactions += 1
        # A value added or removed is no longer partly there.
        touched = set().union(*(set(changes[key]) ^ set(getattr(self.rules, key))
                                for key in ("nat", "forwards", "links") if key in changes))
        changes["partial"] = frozenset(changes.pop("partial", self.rules.partial)) - touched
        self.rules = replace(self.rules, jumps=True, entry_missing=(), **changes)

    @hookimpl
    def firewall_availability(self) -> Availability:
        return Availability(True, "the in-memory firewall works everywhere")

    @hookimpl
    def add_nat(self, bridges: Sequence[Bridge]) -> None:
        if bridges:
            self._commit(nat=self.rules.nat | set(bridges))

    @hookimpl
    def add_forward(self, forwards: Sequence[Forward]) -> None:
        if forwards:
            self._commit(forwards=self.rules.forwards | set(forwards))

    @hookimpl
    def remove_forward(self, forwards: Sequence[Forward]) -> None:
        if forwards:
            self._commit(forwards=self.rules.forwards - set(forwards),
                         partial=self.rules.partial - set(forwards))

    @hookimpl
    def add_link(self, links: Sequence[Link]) -> None:
        if links:
            self._commit(links=self.rules.links | set(links))

    @hookimpl
    def remove_link(self, links: Sequence[Link]) -> None:
        if links:
            self._commit(links=self.rules.links - set(links),
                         partial=self.rules.partial - set(links))

    @hookimpl
    def cleanup(self, project: str) -> None:
        self._commit(
            nat=frozenset(b for b in self.rules.nat if b.project != project),
            forwards=frozenset(f for f in self.rules.forwards if f.project != project),
            links=frozenset(k for k in self.rules.links if k.project != project),
            partial=frozenset(v for v in self.rules.partial if v.project != project),
            unrecognised=tuple(r for r in self.rules.unrecognised if r.project != project),
        )

    @hookimpl
    def remove_nat(self, bridges: Sequence[Bridge]) -> None:
        if bridges:
            self._commit(nat=self.rules.nat - set(bridges),
                         partial=self.rules.partial - set(bridges))

    @hookimpl
    def remove_unrecognised(self, project: str) -> None:
        self._commit(unrecognised=tuple(r for r in self.rules.unrecognised
                                        if r.project != project))

    @hookimpl
    def list_rules(self, project: str | None) -> Ruleset:
        return self.rules if project is None else self.rules.of_project(project)

    @hookimpl
    def find_blockers(self, bridges: Sequence[Bridge]) -> list[Blocker]:
        return list(self.blockers)


class MemoryLink:
    """A link backend over a dictionary of bridges; ``used`` plays the
    networks the host can reach. A ``BridgeState`` with ``owned=False``
    plays a bridge another tool made under the project's bridge name."""

    locker_api = 2  # the plugin API it is written for (locker.plugins.PLUGIN_API)

    def __init__(self, used: Sequence[IPv4Network] = ()) -> None:
        self.used = list(used)
        self.bridges: dict[str, BridgeState] = {}
        self.ip_forward = False
        self.ip6_forward = False

    @hookimpl
    def link_availability(self) -> Availability:
        return Availability(True, "the in-memory link backend works everywhere")

    @hookimpl
    def allocate_subnet(self, bridge: str, pool: IPv4Network | None = None,
                        reserved: Sequence[IPv4Network] = ()) -> IPv4Network:
        state = self.bridges.get(bridge)
        self._require_owned(state)
        if state and state.network:
            return state.network
        taken = self.used + list(reserved) + [s.network for s in self.bridges.values()
                                              if s.network]
        return first_free(taken, pool or DEFAULT_POOL)

    @hookimpl
    def subnet_conflicts(self, bridge: str) -> list[str]:
        state = self.bridges.get(bridge)
        if state is None or state.network is None:
            return []
        return [f"route {n}" for n in self.used if n.overlaps(state.network)]

    @hookimpl
    def ensure_bridge(self, bridge: Bridge, adopt: bool = False) -> BridgeState:
        if bridge.name != bridge_name(bridge.project):
            raise BackendError(f"Bridge {bridge.name!r} is not project "
                               f"{bridge.project!r}'s bridge name.")
        state = self.bridges.get(bridge.name)
        if not (adopt and state is not None):
            self._require_owned(state)
        addresses = state.addresses if state and state.addresses else (bridge.interface,)
        addresses6 = state.addresses6 if state else ()
        if bridge.interface6 is not None and bridge.interface6 not in addresses6:
            addresses6 += (bridge.interface6,)
        self.bridges[bridge.name] = BridgeState(bridge.name, addresses, True,
                                                addresses6=addresses6)
        return self.bridges[bridge.name]

    @hookimpl
    def remove_bridge(self, name: str) -> None:
        self._require_owned(self.bridges.get(name))
        self.bridges.pop(name, None)

    @hookimpl
    def find_bridge(self, name: str) -> BridgeState | None:
        return self.bridges.get(name)

    @hookimpl
    def ensure_ip_forwarding(self, ipv6: bool) -> bool:
        was_off, self.ip_forward = not self.ip_forward, True
        if ipv6:
            was_off, self.ip6_forward = was_off or not self.ip6_forward, True
        return was_off

    @staticmethod
    def _require_owned(state: BridgeState | None) -> None:
        if state is not None and not state.owned:
            raise BackendError(f"A bridge named {state.name!r} exists that Locker did not "
                               "create: remove or rename it.")


@dataclass
class MemoryContainer:
    state: str = STOPPED
    source: Source | None = None
    config: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


class MemoryRuntime:
    """Containers as dictionaries; a running container has its configured
    address."""

    def __init__(self) -> None:
        self.containers: dict[str, MemoryContainer] = {}
        self.fail_start: set[str] = set()
        #: what attach and console were asked to run: (name, command)
        self.attached: list[tuple[str, tuple[str, ...]]] = []
        self.exit_status = 0  # of every attached command
        self.console_logs: dict[str, str] = {}

    def _get(self, name: str) -> MemoryContainer:
        if name not in self.containers:
            raise LockerError(f"Container {name} does not exist.")
        return self.containers[name]

    def state(self, name: str) -> str:
        return self.containers[name].state if name in self.containers else ABSENT

    def survey(self, names, addresses: bool = False) -> dict[str, Observed]:
        return {name: Observed(self.state(name),
                               self.addresses(name) if addresses and name in self.containers
                               else ())
                for name in names}

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.containers))

    def create(self, name: str, source: Source, clone_from: str | None = None) -> None:
        if name in self.containers:
            raise LockerError(f"Container {name} exists already.")
        if isinstance(source, CloneSource):
            original = self._get(clone_from or source.name)
            self.containers[name] = MemoryContainer(
                source=source, config=dict(original.config), files=dict(original.files))
        else:
            self.containers[name] = MemoryContainer(source=source)

    def destroy(self, name: str) -> None:
        if self._get(name).state != STOPPED:
            raise LockerError(f"Container {name} is not stopped.")
        del self.containers[name]

    def configure(self, name: str, bridge: str, address: IPv4Interface,
                  gateway: IPv4Address, mounts=(), cgroup=(), hostname=None,
                  address6=None, gateway6=None) -> None:
        self._get(name).config.update(
            bridge=bridge, address=address, gateway=gateway, mounts=tuple(mounts),
            cgroup=tuple(cgroup), hostname=hostname, address6=address6, gateway6=gateway6)

    def configured_address(self, name: str) -> IPv4Interface | None:
        return self._get(name).config.get("address")

    def start(self, name: str, timeout: float) -> None:
        if name in self.fail_start:
            raise LockerError(f"Container {name} failed to start.")
        self._get(name).state = RUNNING

    def stop(self, name: str, timeout: float) -> None:
        self._get(name).state = STOPPED

    def freeze(self, name: str) -> None:
        self._get(name).state = FROZEN

    def unfreeze(self, name: str) -> None:
        self._get(name).state = RUNNING

    def apply_cgroup(self, name: str, settings) -> None:
        self._get(name).config["applied_cgroup"] = tuple(settings)

    def addresses(self, name: str) -> tuple[IPv4Address, ...]:
        container = self._get(name)
        address = container.config.get("address")
        return (address.ip,) if container.state == RUNNING and address else ()

    def read_file(self, name: str, path: str) -> str | None:
        return self._get(name).files.get(path)

    def write_file(self, name: str, path: str, text: str) -> None:
        self._get(name).files[path] = text

    def attach(self, name: str, command=()) -> int:
        self._get(name)
        self.attached.append((name, tuple(command)))
        return self.exit_status

    def console(self, name: str) -> int:
        self._get(name)
        self.attached.append((name, ("console",)))
        return 0

    def console_log(self, name: str) -> str | None:
        self._get(name)
        return self.console_logs.get(name)
