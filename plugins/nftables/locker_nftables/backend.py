"""The nftables firewall backend: Locker's hooks on top of ``state``,
``layout``, ``rules`` and ``kernel``.

Reads: ``list_rules(project)`` reads the project's own chains, maps and
sets and the shared entry chains in one libnftables call, and keeps what it
read as the backend's *view*; the changing hooks for that project that
follow use the view instead of reading again, and keep it up to date with
what they commit. The core calls ``list_rules`` first in every section
under its host lock, so the view never outlives the lock: the next
section's ``list_rules`` reads the kernel again. A changing hook without a
view of its project (or touching several projects) reads for itself, and
a transaction that fails on a view is retried once on a fresh read. Each
hook writes at most one nft transaction.

IPv6: the values of a project with IPv6 go into the mirror table ``ip6
locker`` (``family``), in the same transaction as the IPv4 ones; the
backend keeps one ``TableState`` per table. The ``ip6`` table is made only
once a value needs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from locker import blockers
from locker.errors import BackendError
from locker.hookspecs import hookimpl
from locker.model import Availability, Blocker, Bridge, Forward, Link, Ruleset, TaggedRule

from locker_nftables import kernel, layout, rules
from locker_nftables.family import FAMILIES, IP, IP6, of_version
from locker_nftables.kernel import FAMILY, TABLE, Command
from locker_nftables.state import Found, TableState, rule_for_key

#: The states of Locker's tables by family.
States = dict[str, TableState]

#: A value's piece Locker wants: its key, and the rule or the element that is it.
Piece = tuple[Any, "rules.Rule | None", "tuple[layout.Element, ...]"]


class NftablesBackend:
    """Locker's firewall in the nftables table ``ip locker``.

    Talks to the kernel only through libnftables' JSON API (the
    ``python3-nftables`` binding), imported on first use.
    """

    locker_api = 2  # the plugin API it is written for (locker.plugins.PLUGIN_API)

    # ----------------------------------------------------------- availability

    @hookimpl
    def firewall_availability(self) -> Availability:
        try:
            import nftables  # noqa: F401
        except ImportError:
            return Availability(False, "The nftables Python binding is missing: install "
                                       "python3-nftables (py3-nftables on Alpine).")
        # Checked by the kernel and dropped, never committed: asking must not
        # change the host's ruleset, not even for a moment.
        probe = {"family": FAMILY, "table": f"locker_probe_{uuid.uuid4().hex[:8]}"}
        commands = [
            {"add": {"table": {"family": FAMILY, "name": probe["table"]}}},
            {"add": {"chain": {**probe, "name": "probe", "type": "nat", "hook": "prerouting",
                               "prio": -100, "policy": "accept"}}},
        ]
        try:
            kernel.run(commands, "create a test table", dry_run=True)
            version = kernel.version()
        except BackendError as error:
            return Availability(False, f"The kernel refused an nftables test table ({error}); "
                                       "load the nf_tables module or use another backend.")
        except Exception as error:  # a broken library must not break `locker backends`
            return Availability(False, f"libnftables failed: {error}; check the nftables install.")
        return Availability(True, f"libnftables {version} can create tables in this kernel.",
                            details={"nftables": version, "table": f"{FAMILY} {TABLE}"})

    def __init__(self) -> None:
        self._view: States | None = None

    # ---------------------------------------------------------------- adding

    @hookimpl
    def add_nat(self, bridges: Sequence[Bridge]) -> None:
        self._add([(r.key, r, ()) for b in bridges for r in rules.nat_rules(b)],
                  "add network rules")

    @hookimpl
    def add_forward(self, forwards: Sequence[Forward]) -> None:
        for forward in forwards:
            rules.check_forward(forward)
        self._add([((purpose, f), None, elements) for f in forwards
                   for purpose, elements in layout.forward_elements(f).items()],
                  "add port forwards")

    @hookimpl
    def add_link(self, links: Sequence[Link]) -> None:
        self._add([(r.key, r, ()) for k in links for r in rules.link_rules(k)],
                  "add link rules")

    # -------------------------------------------------------------- removing

    @hookimpl
    def remove_forward(self, forwards: Sequence[Forward]) -> None:
        for forward in forwards:
            rules.check_forward(forward)
        wanted = {(p, f) for f in forwards for p in ("dnat", "forward")}
        self._remove({f.project for f in forwards}, lambda state: state.with_keys(wanted),
                     "remove port forwards")

    @hookimpl
    def remove_link(self, links: Sequence[Link]) -> None:
        wanted = {r.key for k in links for r in rules.link_rules(k)}
        self._remove({k.project for k in links}, lambda state: state.with_keys(wanted),
                     "remove link rules")

    @hookimpl
    def remove_nat(self, bridges: Sequence[Bridge]) -> None:
        rules.nat_doomed(bridges, set())   # checks the values before anything is read
        # each table's keys alone: the IPv4 ones decide what of the IPv4 rules stays
        self._remove({b.project for b in bridges},
                     lambda state: state.with_keys(rules.nat_doomed(bridges, state.keys())),
                     "remove network rules")

    @hookimpl
    def remove_unrecognised(self, project: str) -> None:
        self._remove({project}, lambda state: state.unrecognised(project),
                     f"remove the altered rules of project {project}")

    @hookimpl
    def cleanup(self, project: str) -> None:
        self._remove({project}, lambda state: state.of(project),
                     f"remove the rules of project {project}", teardown=True)

    # --------------------------------------------------------------- listing

    @hookimpl
    def list_rules(self, project: str | None) -> Ruleset:
        states = {family: TableState.read(project, family) for family in FAMILIES}
        self._view = states if project is not None else None
        found = rules.values(set().union(*(s.keys(project) for s in states.values())))
        unrecognised = tuple(TaggedRule(f.tag.project, f.comment, f.location, f.text)
                             for s in states.values() for f in s.unrecognised(project))
        missing = tuple(m for s in states.values() for m in s.entry_missing(project))
        return Ruleset(nat=found.nat, forwards=found.forwards, links=found.links,
                       jumps=states[IP].exists and not missing, partial=found.partial,
                       unrecognised=unrecognised, entry_missing=missing)

    # ------------------------------------------------------------- blockers

    @hookimpl
    def find_blockers(self, bridges: Sequence[Bridge]) -> list[Blocker]:
        """firewalld and ufw; the forward-hook base chains of other tables
        in the ip and inet families; the legacy iptables FORWARD chain where
        its table is loaded. Chains firewalld or ufw manage are left to
        their blockers."""
        if not bridges:
            return []
        host = blockers.host_firewalls(bridges)
        chains = [blockers.nft_chain(family, table, chain, exprs)
                  for family, table, chain, exprs in kernel.forward_chains()
                  if (family, table) != (FAMILY, TABLE) and not host.manages(family, table)]
        if not host.manages_legacy_forward:
            chains += legacy_forward()
        return list(host.blockers) + blockers.chain_blockers(chains, bridges, _fix)

    # -------------------------------------------------------------- internals

    def _commit(self, commands: list[Command], what: str) -> None:
        """Apply one transaction. The single seam tests use to inject faults."""
        kernel.run(commands, what)

    def _state(self, projects: set[str], fresh: bool = False) -> tuple[States, bool]:
        """The states to work on, and whether they are the view (not read now)."""
        scope = next(iter(projects)) if len(projects) == 1 else None
        if not fresh and self._view is not None and scope is not None \
                and self._view[IP].scope == scope:
            return self._view, True
        states = {family: TableState.read(scope, family) for family in FAMILIES}
        if self._view is not None and (scope is None or self._view[IP].scope == scope):
            self._view = None if scope is None else states
        return states, False

    def _add(self, wanted: list[Piece], what: str) -> None:
        if not wanted:
            return
        projects = {rules.project_of(key) for key, _, _ in wanted}
        states, cached = self._state(projects)
        try:
            self._add_to(states, projects, wanted, what)
        except BackendError:
            if not cached:
                raise
            self._view = None
            self._add_to(self._state(projects, fresh=True)[0], projects, wanted, what)

    def _add_to(self, states: States, projects: set[str], wanted: list[Piece],
                what: str) -> None:
        """One transaction for both tables: each table takes the pieces of
        its family; the ip6 table is set up only when it gets some or is
        there and damaged."""
        commands: list[Command] = []
        commits = []
        for family in FAMILIES:
            state = states[family]
            mine = [p for p in wanted if of_version(rules.key_version(p[0])) == family]
            if family == IP6 and not mine and not state.exists:
                continue
            planned = _plan_add(state, projects, mine)
            if planned is not None:
                commands += state.commands(planned[0])
                commits.append(planned[1])
        if not commands:
            return
        self._commit(commands, what)
        for commit in commits:
            commit()

    def _remove(self, projects: set[str], doomed: Callable[[TableState], list[Found]],
                what: str, teardown: bool = False) -> None:
        """Delete what ``doomed`` picks from each table's state, and the
        skeleton of each project left with nothing in its own chains and
        stores of a table."""
        if not projects:
            return
        states, cached = self._state(projects)
        if cached and any(s.needs_handles(p) for s in states.values() for p in projects):
            states, cached = self._state(projects, fresh=True)
        try:
            self._remove_from(states, projects, doomed, what, teardown)
        except BackendError:
            if not cached:
                raise
            self._view = None
            self._remove_from(self._state(projects, fresh=True)[0], projects, doomed, what,
                              teardown)

    def _remove_from(self, states: States, projects: set[str],
                     doomed: Callable[[TableState], list[Found]], what: str,
                     teardown: bool) -> None:
        commands: list[Command] = []
        done: list[tuple[TableState, list[Found], list[str]]] = []
        for family in FAMILIES:
            state = states[family]
            gone = doomed(state)
            deletes = [c for f in gone for c in f.delete]
            if not deletes and not (teardown and any(state.skeleton_of(p) for p in projects)):
                continue
            state.committed_removal(gone)   # undone below if the kernel refuses
            emptied = [p for p in sorted(projects) if not state.owns_rules(p)]
            teardowns = [c for p in emptied for c in state.project_teardown(p)]
            base = state.base_setup() if family == IP or state.exists else []
            commands += state.commands(base + kernel.grouped(deletes) + teardowns)
            done.append((state, gone, emptied))
        if not commands:
            return
        try:
            self._commit(commands, what)
        except BackendError:
            for state, gone, _ in done:
                state.found.extend(gone)
            raise
        for state, _, emptied in done:
            state.committed_base()
            for project in emptied:
                state.committed_teardown(project)


def _plan_add(state: TableState, projects: set[str], wanted: list[Piece]):
    """The commands (in the ip family's words) that add ``wanted`` to one
    table and move its projects' rules of the old layout, and what to note
    in the state once they are committed; None when there is nothing to do."""
    legacy = [f for p in projects for f in state.of(p) if f.legacy]
    present = {k for k in state.keys() if k not in {f.key for f in legacy}}
    slots = {(e.store, e.key): f for f in state.found for e in f.elements}
    moved = [(f.key, *rule_for_key(f.key)) for f in legacy]
    gone = list(legacy)
    added, commands = [], [c for f in legacy for c in f.delete]
    for key, rule, elements in wanted + moved:
        if key in present:
            continue
        present.add(key)
        if elements:
            for element in elements:
                occupant = slots.get((element.store, element.key))
                if occupant is not None and all(occupant is not g for g in gone):
                    gone.append(occupant)
                    commands.extend(occupant.delete)
            commands.extend(element.add_command() for element in elements)
            added.append((key, elements[0].comment,
                          f"{state.family} {TABLE} map {elements[0].store}", elements))
        else:
            commands.append(rule.add_command())
            added.append((key, rule.comment, f"{state.family} {TABLE} {rule.chain}", ()))
    damaged = any(state.entry_missing(p) for p in projects) or not state.exists
    if not commands and not damaged:
        return None
    setup = state.base_setup()
    for project in sorted(projects):
        setup += state.project_setup(project)

    def commit() -> None:
        state.committed_base()
        for project in projects:
            state.committed_project(project)
        state.committed_removal(gone)
        for item in added:
            state.committed_addition(*item)
    return setup + kernel.grouped(commands), commit


LEGACY_FORWARD = "iptables-legacy chain filter FORWARD"


def legacy_forward() -> list[blockers.ForwardChain]:
    """The legacy iptables FORWARD chain (``iptables-legacy -S FORWARD``)
    where the legacy ``filter`` table is loaded in this network namespace;
    asking would load it otherwise."""
    try:
        with open("/proc/thread-self/net/ip_tables_names") as names:
            if "filter" not in names.read().split():
                return []
    except OSError:
        return []
    done = blockers.run_briefly(["iptables-legacy", "-w", "1", "-S", "FORWARD"])
    if done is None or done.returncode != 0:
        return []
    return [blockers.iptables_chain(LEGACY_FORWARD, "FORWARD", done.stdout)]


def _fix(chain: blockers.ForwardChain, bridge: str, missing: tuple[str, ...]) -> str:
    if chain.location == LEGACY_FORWARD:
        return blockers.iptables_fix("iptables-legacy", "FORWARD", bridge, missing)
    return blockers.nft_chain_fix(chain, bridge, missing)
