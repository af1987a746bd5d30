"""The iptables firewall backend: Locker's hooks on python-iptables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set

from locker import blockers
from locker.hookspecs import hookimpl
from locker.model import Availability, Blocker, Bridge, Forward, Link, Ruleset, TaggedRule
from locker.names import Tag

from locker_iptables import availability, nfside, rules
from locker_iptables.kernel import Entry, Kernel, Op, View
from locker_iptables.rules import CHAINS, Spec


def _ensure(view: View, specs: Iterable[Spec], stale: Set[Spec] = frozenset()) -> list[Op]:
    """Create Locker's chains and jumps of this table if missing (each jump
    inserted first in its built-in chain; duplicate and altered jumps are
    dropped), delete the rules of Locker's chains that are ``stale``, then
    append the missing specs. Deletions come first, while the positions
    read are still valid."""
    creates: list[Op] = [Op("create", chain) for chain in CHAINS[view.table]
                         if chain not in view.chains]
    deletes: list[Op] = []
    inserts: list[Op] = []
    for chain, parent in CHAINS[view.table].items():
        jumps = view.jumps(chain)
        if not jumps:
            jump = next(j for j in rules.jump_specs() if j.target == chain)
            inserts.append(Op("insert", jump.chain, jump, 0))
        deletes += [Op("delete", parent, position=extra.index, entry=extra)
                    for extra in jumps[1:]]
    deletes += [Op("delete", parent, position=e.index, entry=e)
                for parent, e in view.stray_jumps()]
    deletes += _delete(view, lambda e: e.spec in stale)
    present = {e.spec for _, e in view.locker_entries() if e.spec and e.spec not in stale}
    appends = [Op("append", spec.chain, spec) for spec in rules.unique(specs)
               if spec.table == view.table and spec not in present]
    return creates + sorted(deletes, key=lambda op: (op.chain, -op.position)) + inserts + appends


def _delete(view: View, doomed: Callable[[Entry], bool]) -> list[Op]:
    """Delete the rules that ``doomed`` picks, in Locker's chains and the
    built-in chains read with them, last first so that positions stay
    valid."""
    ops = [Op("delete", chain, position=e.index, entry=e)
           for chain, e in view.all_entries() if doomed(e)]
    return sorted(ops, key=lambda op: (op.chain, -op.position))


def _tagged(entry: Entry, project: str | None = None) -> Tag | None:
    tag = Tag.parse(entry.comment)
    return tag if tag is not None and project in (None, tag.project) else None


def _unrecognised(entry: Entry, project: str | None = None) -> bool:
    return _tagged(entry, project) is not None and rules.parse(entry.spec) is None


def _keys(views: Mapping[str, View]) -> set:
    return {rules.parse(e.spec) for v in views.values() for _, e in v.all_entries()} - {None}


def _read_ruleset(views: Mapping[str, View]) -> Ruleset:
    keys, unrecognised = set(), []
    for view in views.values():
        for chain, entry in view.all_entries():
            tag = _tagged(entry)
            if tag is None:
                continue
            key = rules.parse(entry.spec)
            if key is not None:
                keys.add(key)
                continue
            text = entry.text if entry.spec is None else rules.spec_text(entry.spec)
            unrecognised.append(TaggedRule(tag.project, entry.comment,
                                           f"iptables-legacy {view.table} {chain}", text or ""))
    anything = any(view.anything() for view in views.values())
    missing = [p for view in views.values() for p in view.entry_missing()] if anything else []
    return rules.ruleset(keys, anything and not missing, unrecognised, missing)


class IptablesBackend:
    """Firewall backend ``iptables``: Locker's rules in the legacy iptables
    tables through python-iptables (``iptc``).

    Chains: ``LOCKER_PREROUTING`` and ``LOCKER_POSTROUTING`` (nat) and
    ``LOCKER_FORWARD`` (filter), each entered by a jump with the comment
    ``LOCKER`` placed first in ``PREROUTING`` (local destinations only),
    ``POSTROUTING`` and ``FORWARD``. Each hook call is one commit per table
    changed, under the xtables lock; see ``locker_iptables.rules`` for the
    rules themselves.

    ``lock_timeout``: seconds to wait for ``/run/xtables.lock``;
    ``retries``: attempts of a commit that another writer's change
    invalidated.
    """

    locker_api = 2  # the plugin API it is written for (locker.plugins.PLUGIN_API)
    SETTINGS = {"lock_timeout": float, "retries": int}  # host file: backends: {iptables: ...}

    def __init__(self, lock_timeout: float = 10.0, retries: int = 5) -> None:
        self.kernel = Kernel(lock_timeout=lock_timeout, retries=retries)

    @hookimpl
    def firewall_availability(self) -> Availability:
        return availability.availability()

    def _add(self, specs: Sequence[Spec], stale: Set[Spec] = frozenset()) -> None:
        self.kernel.transact(
            lambda views: {t: _ensure(v, specs, stale) for t, v in views.items()})

    @hookimpl
    def add_nat(self, bridges: Sequence[Bridge]) -> None:
        specs = [s for b in bridges for s in rules.nat_specs(b)]
        if specs:
            self._add(specs)

    @hookimpl
    def add_forward(self, forwards: Sequence[Forward]) -> None:
        specs = [s for f in forwards for s in rules.forward_specs(f)]
        if specs:
            self._add(specs, {rules.former_accept_spec(f) for f in forwards})

    @hookimpl
    def add_link(self, links: Sequence[Link]) -> None:
        specs = [s for k in links for s in rules.link_specs(k)]
        if specs:
            self._add(specs)

    @hookimpl
    def remove_forward(self, forwards: Sequence[Forward]) -> None:
        doomed = {s for f in forwards for s in rules.forward_specs(f)}
        doomed |= {rules.former_accept_spec(f) for f in forwards}
        if doomed:
            self.kernel.transact(lambda views: {
                t: _delete(v, lambda e: e.spec in doomed) for t, v in views.items()})

    @hookimpl
    def remove_link(self, links: Sequence[Link]) -> None:
        doomed = {s for k in links for s in rules.link_specs(k)}
        if doomed:
            self.kernel.transact(lambda views: {
                t: _delete(v, lambda e: e.spec in doomed) for t, v in views.items()})

    @hookimpl
    def remove_nat(self, bridges: Sequence[Bridge]) -> None:
        if not rules.nat_doomed(bridges, set()):    # also checks the values first
            return

        def plan(views: Mapping[str, View]) -> dict[str, list[Op]]:
            doomed = rules.nat_doomed(bridges, _keys(views))
            return {t: _delete(v, lambda e: e.spec in doomed) for t, v in views.items()}

        self.kernel.transact(plan)

    @hookimpl
    def remove_unrecognised(self, project: str) -> None:
        self.kernel.transact(lambda views: {
            t: _delete(v, lambda e: _unrecognised(e, project)) for t, v in views.items()})

    @hookimpl
    def cleanup(self, project: str) -> None:
        def mine(entry: Entry) -> bool:
            tag = Tag.parse(entry.comment)
            return tag is not None and tag.project == project

        self.kernel.transact(lambda views: {t: _delete(v, mine) for t, v in views.items()})

    @hookimpl
    def list_rules(self, project: str | None) -> Ruleset:
        found = _read_ruleset(self.kernel.read())
        return found if project is None else found.of_project(project)

    @hookimpl
    def find_blockers(self, bridges: Sequence[Bridge]) -> list[Blocker]:
        """Other tools' nf_tables forward chains (iptables-nft's ``ip filter
        FORWARD`` among them), firewalld and ufw. The legacy FORWARD chain
        this backend writes is not checked: Locker's jump is first there,
        so its accepts come before the chain's own rules and policy."""
        if not bridges:
            return []
        host = blockers.host_firewalls(bridges)
        chains = [blockers.nft_chain(family, table, chain, exprs)
                  for family, table, chain, exprs in nfside.forward_chains()
                  if not host.manages(family, table)]
        return list(host.blockers) + blockers.chain_blockers(chains, bridges,
                                                             blockers.nft_chain_fix)
