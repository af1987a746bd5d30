"""The nftables firewall backend: Locker's hooks on top of ``rules`` and
``kernel``. Each hook call reads Locker's table once and writes at most one
nft transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from locker import blockers
from locker.errors import BackendError
from locker.hookspecs import hookimpl
from locker.model import Availability, Blocker, Bridge, Forward, Link, Ruleset, TaggedRule
from locker.names import JUMP_COMMENT, Tag

from locker_nftables import kernel, rules
from locker_nftables.kernel import FAMILY, TABLE, Command


@dataclass
class Found:
    """A tagged rule in Locker's table, with its key (None: not a rule
    Locker would write)."""

    rule: rules.Rule
    expr: list
    tag: Tag


@dataclass
class TableState:
    """What Locker's table holds, as read from the kernel."""

    exists: bool = False
    chains: set[str] = field(default_factory=set)
    found: list[Found] = field(default_factory=list)           # tagged rules
    jumps: dict[str, list[int]] = field(default_factory=dict)  # base chain -> handles
    stray_jumps: list[tuple[str, int]] = field(default_factory=list)  # (chain, handle)

    @classmethod
    def read(cls) -> TableState:
        listing = kernel.list_table()
        state = cls(exists=listing is not None)
        bases = {base.name: base for base in rules.BASE_CHAINS}
        for item in listing or ():
            if "chain" in item:
                state.chains.add(item["chain"]["name"])
            rule = item.get("rule")
            if rule is None:
                continue
            chain, comment, expr = rule["chain"], rule.get("comment"), rule.get("expr", [])
            tag = Tag.parse(comment)
            if comment == JUMP_COMMENT:
                if chain in bases and bases[chain].is_jump(expr):
                    state.jumps.setdefault(chain, []).append(rule["handle"])
                else:
                    state.stray_jumps.append((chain, rule["handle"]))
            elif tag is not None:
                key = rules.parse_rule(chain, comment, expr)
                state.found.append(Found(rules.Rule(chain, key, comment, handle=rule["handle"]),
                                         expr, tag))
        return state

    @property
    def keys(self) -> set:
        return {f.rule.key for f in self.found if f.rule.key is not None}

    def with_keys(self, keys: set) -> list[Found]:
        return [f for f in self.found if f.rule.key in keys]

    def of_project(self, project: str) -> list[Found]:
        return [f for f in self.found if f.tag.project == project]

    def unrecognised(self, project: str | None = None) -> list[Found]:
        return [f for f in self.found
                if f.rule.key is None and project in (None, f.tag.project)]

    def entry_missing(self) -> list[str]:
        """One phrase per missing chain or jump, per duplicate jump and per
        rule with the jump comment that is not a jump Locker writes."""
        if not self.exists:
            return []
        where = f"in table {FAMILY} {TABLE}"
        problems = [f"chain {name} {where}" for name in rules.REGULAR_CHAINS
                    if name not in self.chains]
        problems += [f"base chain {base.name} ({base.hook} hook) {where}"
                     for base in rules.BASE_CHAINS if base.name not in self.chains]
        for base in rules.BASE_CHAINS:
            count = len(self.jumps.get(base.name, ()))
            if count == 0:
                problems.append(f"jump from {base.name} to {base.target}")
            elif count > 1:
                problems.append(f"{count - 1} duplicate jump(s) from {base.name} to {base.target}")
        problems += [f"altered jump rule in chain {chain}" for chain, _ in self.stray_jumps]
        return problems

    @property
    def complete(self) -> bool:
        """Locker's chains and exactly-once jumps are all there, and no
        other rule carries the jump comment."""
        return self.exists and not self.entry_missing()

    def setup_commands(self) -> list[Command]:
        """Create the table, chains and missing jumps; drop duplicate and
        altered jumps."""
        commands = rules.table_commands()
        for base in rules.BASE_CHAINS:
            handles = self.jumps.get(base.name, [])
            if not handles:
                commands.append(rules.jump_command(base))
            commands.extend(rules.delete_command(h, base.name) for h in handles[1:])
        commands.extend(rules.delete_command(h, chain) for chain, h in self.stray_jumps)
        return commands


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

    # ---------------------------------------------------------------- adding

    @hookimpl
    def add_nat(self, bridges: Sequence[Bridge]) -> None:
        self._add([r for b in bridges for r in rules.nat_rules(b)], "add network rules")

    @hookimpl
    def add_forward(self, forwards: Sequence[Forward]) -> None:
        self._add([r for f in forwards for r in rules.forward_rules(f)], "add port forwards")

    @hookimpl
    def add_link(self, links: Sequence[Link]) -> None:
        self._add([r for k in links for r in rules.link_rules(k)], "add link rules")

    # -------------------------------------------------------------- removing

    @hookimpl
    def remove_forward(self, forwards: Sequence[Forward]) -> None:
        wanted = {r.key for f in forwards for r in rules.forward_rules(f)}
        self._remove(lambda state: state.with_keys(wanted), bool(wanted), "remove port forwards")

    @hookimpl
    def remove_link(self, links: Sequence[Link]) -> None:
        wanted = {r.key for k in links for r in rules.link_rules(k)}
        self._remove(lambda state: state.with_keys(wanted), bool(wanted), "remove link rules")

    @hookimpl
    def remove_nat(self, bridges: Sequence[Bridge]) -> None:
        rules.nat_doomed(bridges, set())   # checks the values before anything is read
        self._remove(lambda state: state.with_keys(rules.nat_doomed(bridges, state.keys)),
                     bool(bridges), "remove network rules")

    @hookimpl
    def remove_unrecognised(self, project: str) -> None:
        self._remove(lambda state: state.unrecognised(project), True,
                     f"remove the altered rules of project {project}")

    @hookimpl
    def cleanup(self, project: str) -> None:
        self._remove(lambda state: state.of_project(project), True,
                     f"remove the rules of project {project}")

    # --------------------------------------------------------------- listing

    @hookimpl
    def list_rules(self, project: str | None) -> Ruleset:
        state = TableState.read()
        keys = {k for k in state.keys if project is None or rules.project_of(k) == project}
        found = rules.values(keys)
        unrecognised = tuple(
            TaggedRule(f.tag.project, f.rule.comment, f"{FAMILY} {TABLE} {f.rule.chain}",
                       rules.rule_text(f.expr))
            for f in state.unrecognised(project))
        return Ruleset(nat=found.nat, forwards=found.forwards, links=found.links,
                       jumps=state.complete, partial=found.partial,
                       unrecognised=unrecognised, entry_missing=tuple(state.entry_missing()))

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

    def _add(self, wanted: list[rules.Rule], what: str) -> None:
        if not wanted:
            return
        state = TableState.read()
        present = state.keys
        commands = []
        for rule in wanted:
            if rule.key not in present:
                present.add(rule.key)
                commands.append(rule.add_command())
        if commands or not state.complete:
            self._commit(state.setup_commands() + commands, what)

    def _remove(self, doomed: Callable[[TableState], list[Found]], anything: bool,
                what: str) -> None:
        """Delete the tagged rules ``doomed`` picks from the state read."""
        if not anything:
            return
        state = TableState.read()
        commands = [rules.delete_command(found.rule.handle, found.rule.chain)
                    for found in doomed(state)]
        if commands:
            self._commit(state.setup_commands() + commands, what)


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
