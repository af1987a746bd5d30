"""The nftables firewall backend: Locker's hooks on top of ``rules`` and
``kernel``. Each hook call reads Locker's table once and writes at most one
nft transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from locker.errors import BackendError
from locker.hookspecs import hookimpl
from locker.model import Availability, Bridge, Forward, Link, Ruleset
from locker.names import JUMP_COMMENT, Tag

from locker_nftables import kernel, rules
from locker_nftables.kernel import FAMILY, TABLE, Command


@dataclass
class TableState:
    """What Locker's table holds, as read from the kernel."""

    exists: bool = False
    chains: set[str] = field(default_factory=set)
    found: list[rules.Rule] = field(default_factory=list)     # tagged rules
    jumps: dict[str, list[int]] = field(default_factory=dict)  # base chain -> handles

    @classmethod
    def read(cls) -> TableState:
        listing = kernel.list_table()
        state = cls(exists=listing is not None)
        targets = {base.name: base.target for base in rules.BASE_CHAINS}
        for item in listing or ():
            if "chain" in item:
                state.chains.add(item["chain"]["name"])
            rule = item.get("rule")
            if rule is None:
                continue
            chain, comment, expr = rule["chain"], rule.get("comment"), rule.get("expr", [])
            if comment == JUMP_COMMENT and chain in targets and \
                    any(e.get("jump", {}).get("target") == targets[chain] for e in expr):
                state.jumps.setdefault(chain, []).append(rule["handle"])
            elif Tag.parse(comment) is not None:
                key = rules.parse_rule(chain, comment, expr)
                state.found.append(rules.Rule(chain, key, comment, handle=rule["handle"]))
        return state

    @property
    def keys(self) -> set:
        return {rule.key for rule in self.found if rule.key is not None}

    @property
    def complete(self) -> bool:
        """Locker's chains and exactly-once jumps are all there."""
        return (self.chains >= {b.name for b in rules.BASE_CHAINS} | set(rules.REGULAR_CHAINS)
                and all(len(self.jumps.get(b.name, ())) == 1 for b in rules.BASE_CHAINS))

    def setup_commands(self) -> list[Command]:
        """Create the table, chains and missing jumps; drop duplicate jumps."""
        commands = rules.table_commands()
        for base in rules.BASE_CHAINS:
            handles = self.jumps.get(base.name, [])
            if not handles:
                commands.append(rules.jump_command(base))
            commands.extend(rules.delete_command(h, base.name) for h in handles[1:])
        return commands


class NftablesBackend:
    """Locker's firewall in the nftables table ``ip locker``.

    Talks to the kernel only through libnftables' JSON API (the
    ``python3-nftables`` binding), imported on first use.
    """

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
        self._remove(lambda rule: rule.key in wanted, bool(wanted), "remove port forwards")

    @hookimpl
    def remove_link(self, links: Sequence[Link]) -> None:
        wanted = {r.key for k in links for r in rules.link_rules(k)}
        self._remove(lambda rule: rule.key in wanted, bool(wanted), "remove link rules")

    @hookimpl
    def cleanup(self, project: str) -> None:
        self._remove(lambda rule: Tag.parse(rule.comment).project == project, True,
                     f"remove the rules of project {project}")

    # --------------------------------------------------------------- listing

    @hookimpl
    def list_rules(self, project: str | None) -> Ruleset:
        state = TableState.read()
        keys = {k for k in state.keys if project is None or _project_of(k) == project}
        forwards = {k[1] for k in keys if k[0] == "dnat" and ("forward", k[1]) in keys}
        links = {k[1] for k in keys if k[0] == "link" and ("link-back", k[1]) in keys}
        nat = {
            Bridge(k[1], name, k[2])
            for k in keys if k[0] == "masquerade"
            for name in _bridges(keys, k[1])
        }
        return Ruleset(nat=frozenset(nat), forwards=frozenset(forwards),
                       links=frozenset(links), jumps=state.exists and state.complete)

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

    def _remove(self, doomed, anything: bool, what: str) -> None:
        if not anything:
            return
        state = TableState.read()
        commands = [rules.delete_command(rule.handle, rule.chain)
                    for rule in state.found if doomed(rule)]
        if commands:
            self._commit(state.setup_commands() + commands, what)


def _project_of(key: tuple) -> str:
    return key[1] if isinstance(key[1], str) else key[1].project


def _bridges(keys: Iterable[tuple], project: str) -> set[str]:
    outbound = {k[2] for k in keys if k[0] == "outbound" and k[1] == project}
    replies = {k[2] for k in keys if k[0] == "replies" and k[1] == project}
    return outbound & replies
