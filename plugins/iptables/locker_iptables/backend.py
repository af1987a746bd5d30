"""The iptables firewall backend: Locker's hooks on python-iptables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set

from locker.hookspecs import hookimpl
from locker.model import Availability, Bridge, Forward, Link, Ruleset
from locker.names import Tag

from locker_iptables import availability, rules
from locker_iptables.kernel import Entry, Kernel, Op, View
from locker_iptables.rules import CHAINS, Spec


def _ensure(view: View, specs: Iterable[Spec], stale: Set[Spec] = frozenset()) -> list[Op]:
    """Create Locker's chains and jumps of this table if missing (each jump
    inserted first in its built-in chain; duplicate jumps are dropped),
    delete the rules of Locker's chains that are ``stale``, then append the
    missing specs."""
    ops: list[Op] = []
    for chain in CHAINS[view.table]:
        if chain not in view.chains:
            ops.append(Op("create", chain))
        jumps = view.jumps(chain)
        if not jumps:
            jump = next(j for j in rules.jump_specs() if j.target == chain)
            ops.append(Op("insert", jump.chain, jump, 0))
        for extra in reversed(jumps[1:]):
            ops.append(Op("delete", CHAINS[view.table][chain],
                          position=extra.index, entry=extra))
    ops += _delete(view, lambda e: e.spec in stale)
    present = {e.spec for _, e in view.locker_entries() if e.spec and e.spec not in stale}
    for spec in rules.unique(specs):
        if spec.table == view.table and spec not in present:
            ops.append(Op("append", spec.chain, spec))
    return ops


def _delete(view: View, doomed: Callable[[Entry], bool]) -> list[Op]:
    """Delete the rules of Locker's chains that ``doomed`` picks, last
    first so that positions stay valid."""
    ops = [Op("delete", chain, position=e.index, entry=e)
           for chain, e in view.locker_entries() if doomed(e)]
    return sorted(ops, key=lambda op: (op.chain, -op.position))


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
    def cleanup(self, project: str) -> None:
        def mine(entry: Entry) -> bool:
            tag = Tag.parse(entry.comment)
            return tag is not None and tag.project == project

        self.kernel.transact(lambda views: {t: _delete(v, mine) for t, v in views.items()})

    @hookimpl
    def list_rules(self, project: str | None) -> Ruleset:
        views = self.kernel.read()
        jumps = all(view.complete() for view in views.values())
        specs = [e.spec for view in views.values() for _, e in view.locker_entries() if e.spec]
        found = rules.ruleset(specs, jumps)
        return found if project is None else found.of_project(project)
