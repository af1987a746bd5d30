"""The iptables firewall backend: Locker's hooks on python-iptables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence, Set

from locker import blockers
from locker.hookspecs import hookimpl
from locker.model import Availability, Blocker, Bridge, Forward, Link, Ruleset, TaggedRule
from locker.names import Tag

from locker_iptables import availability, nfside, rules
from locker_iptables.kernel import Entry, Kernel, Op, View
from locker_iptables.rules import ENTRY_CHAINS, FAMILY, FAMILY_TABLES, HEADS, Spec


def _now(entry: Entry) -> Spec | None:
    """The spec of the current layout that a decoded entry stands for: its
    own, or for a rule of the old layout the one that replaces it."""
    if rules.parse(entry.spec) is None:
        key = rules.parse_legacy(entry.spec)
        if key is not None:
            return rules.spec_of(key)
    return entry.spec


def _deletes(ops: Iterable[Op]) -> list[Op]:
    """Rule deletions once each, last first per chain so that positions
    stay valid."""
    unique = {(op.chain, op.position): op for op in ops}
    return sorted(unique.values(), key=lambda op: (op.chain, -op.position))


def _ensure(view: View, specs: Iterable[Spec], stale: Set[Spec],
            projects: Set[str]) -> list[Op]:
    """Create Locker's shared chains and jumps of this table if missing
    (each jump inserted first in its parent chain; duplicate and altered
    jumps are dropped), and each project's own chain with exactly one
    dispatch rule into it; delete the rules that are ``stale``, move the
    projects' rules of the old layout into their own chains, then append
    the missing specs. Deletions come first, while the positions read are
    still valid.

    In an ip6tables table, only when IPv6 is in use: the specs hold some of
    that family, or Locker's chains are already there; and only for the
    projects with specs of that family or with rules there already."""
    table = view.table
    if FAMILY[table] == 6:
        mine = {s.tag.project for s in specs if FAMILY[s.table] == 6 and s.tag}
        if not mine and not view.anything():
            return []
        projects = frozenset(p for p in projects if p in mine or p in view.projects())
    creates = [Op("create", chain) for chain in ENTRY_CHAINS[table] if chain not in view.chains]
    creates += [Op("create", rules.project_chain(table, p)) for p in sorted(projects)
                if rules.project_chain(table, p) not in view.chains]
    deletes: list[Op] = []
    inserts: list[Op] = []
    head = view.head_in_place()
    heads = HEADS.get(table, ())
    for jump in view.table_jumps():
        found = view.jumps(jump)
        if jump in heads:
            keep = found[:1] if head else []
            if not keep:
                inserts.append(Op("insert", jump.chain, jump, heads.index(jump)))
        else:
            keep = found[:1]
            if not keep:
                inserts.insert(0, Op("insert", jump.chain, jump, 0))
        deletes += [Op("delete", jump.chain, position=e.index, entry=e)
                    for e in found if e not in keep]
    deletes += [Op("delete", parent, position=e.index, entry=e)
                for parent, e in view.stray_jumps()]
    appends: list[Op] = []
    for project in sorted(projects):
        exact, altered = view.dispatches(project)
        shared = rules.DISPATCH_CHAIN[table]
        deletes += [Op("delete", shared, position=e.index, entry=e) for e in exact[1:] + altered]
        if not exact:
            appends.append(Op("append", shared, rules.dispatch_spec(table, project)))
    moved: list[Spec] = []
    present: set[Spec] = set()
    for chain, entry, tag in view.tagged():
        legacy = tag.project in projects and rules.parse_legacy(entry.spec) is not None
        if entry.spec in stale or legacy:
            deletes.append(Op("delete", chain, position=entry.index, entry=entry))
            if legacy:
                moved.append(_now(entry))
        elif entry.spec is not None:
            present.add(entry.spec)
    appends += [Op("append", spec.chain, spec) for spec in rules.unique([*specs, *moved])
                if spec.table == table and spec not in present]
    return creates + _deletes(deletes) + inserts + appends


def _removal(views: Mapping[str, View], doomed: Callable[[Entry], bool],
             teardown: Set[str] = frozenset(),
             when_empty: Set[str] = frozenset()) -> dict[str, list[Op]]:
    """Delete the decoded rules that ``doomed`` picks, in Locker's chains
    and the built-in chains read with them; then tear down the own chains
    (and dispatch rules) of the projects in ``teardown``, and of those in
    ``when_empty`` that this removal leaves without any rule."""
    picked = {t: [(chain, e) for chain, e in v.all_entries() if e.decoded and doomed(e)]
              for t, v in views.items()}
    gone = {id(e) for found in picked.values() for _, e in found}
    torn = {family: set(teardown) for family in FAMILY_TABLES}
    for project in when_empty:
        for family, tables in FAMILY_TABLES.items():
            mine = [e for t in tables if t in views for _, e, tag in views[t].tagged()
                    if tag.project == project and tag.purpose != "dispatch"]
            if mine and all(id(e) in gone for e in mine):
                torn[family].add(project)
    plans: dict[str, list[Op]] = {}
    for table, view in views.items():
        deletes = [Op("delete", chain, position=e.index, entry=e) for chain, e in picked[table]]
        dropped: list[Op] = []
        for project in sorted(torn[FAMILY[table]]):
            chain = rules.project_chain(table, project)
            exact, altered = view.dispatches(project)
            deletes += [Op("delete", rules.DISPATCH_CHAIN[table], position=e.index, entry=e)
                        for e in exact + altered]
            if chain in view.chains:
                deletes += [Op("delete", chain, position=e.index, entry=e)
                            for e in view.chains[chain]]
                dropped.append(Op("delete_chain", chain))
        plans[table] = _deletes(deletes) + dropped
    return plans


def _former_accepts(forwards: Iterable[Forward]) -> set[Spec]:
    return {s for s in map(rules.former_accept_spec, forwards) if s is not None}


def _tagged(entry: Entry, project: str | None = None) -> Tag | None:
    tag = Tag.parse(entry.comment) if entry.decoded else None
    return tag if tag is not None and project in (None, tag.project) else None


def _unrecognised(entry: Entry, project: str | None = None) -> bool:
    tag = _tagged(entry, project)
    return (tag is not None and tag.purpose != "dispatch" and rules.parse(entry.spec) is None
            and rules.parse_legacy(entry.spec) is None)


def _key(entry: Entry) -> rules.Key | None:
    return rules.parse(entry.spec) or rules.parse_legacy(entry.spec)


def _keys(views: Mapping[str, View]) -> set:
    return {_key(e) for v in views.values() for _, e, _ in v.tagged()} - {None}


def _read_ruleset(views: Mapping[str, View]) -> Ruleset:
    keys, unrecognised, legacy = set(), [], Counter()
    for view in views.values():
        for chain, entry, tag in view.tagged():
            if tag.purpose == "dispatch":
                continue
            key = rules.parse(entry.spec)
            if key is None:
                key = rules.parse_legacy(entry.spec)
                legacy[tag.project] += key is not None
            if key is not None:
                keys.add(key)
                continue
            text = entry.text if entry.spec is None else rules.spec_text(entry.spec)
            store = "ip6tables-legacy" if FAMILY[view.table] == 6 else "iptables-legacy"
            unrecognised.append(TaggedRule(tag.project, entry.comment,
                                           f"{store} {rules.BASE[view.table]} {chain}",
                                           text or ""))
    anything = any(view.anything() for view in views.values())
    # IPv6's entry points count once Locker has anything there.
    in_use = {family for family, tables in FAMILY_TABLES.items()
              if family == 4 or any(views[t].anything() for t in tables if t in views)}
    missing = [p for view in views.values() if FAMILY[view.table] in in_use
               for p in view.entry_missing()] if anything else []
    for project in sorted({rules.key_project(k) for k in keys}):
        # A project's ip6tables chains are there only when it has IPv6 rules.
        missing += [p for view in views.values()
                    if FAMILY[view.table] == 4 or project in _family_projects(views, 6)
                    for p in view.project_missing(project)]
        if legacy[project]:
            missing.append(f"{legacy[project]} rule(s) of project {project} in the old layout "
                           "(shared chains), moved into its own chains by the next command")
    return rules.ruleset(keys, anything and not missing, unrecognised, missing)


def _family_projects(views: Mapping[str, View], family: int) -> set[str]:
    return {p for t in FAMILY_TABLES[family] if t in views for p in views[t].projects()}


def _projects(values: Iterable[Bridge | Forward | Link]) -> frozenset[str]:
    return frozenset(v.project for v in values)


def _tables(specs: Iterable[Spec]) -> set[str]:
    """The tables an adding hook with these specs instantiates: IPv4's
    always (each adding hook ensures a project's chains there), IPv6's
    when some spec is of that family."""
    families = {4} | {FAMILY[s.table] for s in specs}
    return {t for family in families for t in FAMILY_TABLES[family]}


class IptablesBackend:
    """Firewall backend ``iptables``: Locker's rules in the legacy iptables
    tables through python-iptables (``iptc``).

    Shared chains: ``LOCKER_PREROUTING`` and ``LOCKER_POSTROUTING`` (nat),
    ``LOCKER_FORWARD``, ``LOCKER_USER``, ``LOCKER_ISOLATION`` and
    ``LOCKER_INPUT`` (filter), each entered by a jump with the comment
    ``LOCKER`` placed first in ``PREROUTING`` and nat ``OUTPUT`` (local
    destinations only), ``POSTROUTING``, ``FORWARD`` and ``INPUT``, and
    for ``LOCKER_USER`` and ``LOCKER_ISOLATION`` as the first two rules of
    ``LOCKER_FORWARD``. Each project's forwards, links, outbound and
    replies rules are in its own ``LOCKER_FWD_<p>`` / ``LOCKER_PRE_<p>``,
    reached by one dispatch rule each. Each hook call reads the shared
    chains and the own chains of the projects it is about, and is one
    commit per table changed, under the xtables lock; see
    ``locker_iptables.rules`` for the rules themselves.

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

    def _add(self, specs: Sequence[Spec], projects: Set[str],
             stale: Set[Spec] = frozenset()) -> None:
        self.kernel.transact(
            lambda views: {t: _ensure(v, specs, stale, projects) for t, v in views.items()},
            scope=projects, create=_tables(specs))

    def _remove(self, doomed: Set[Spec], projects: Set[str]) -> None:
        self.kernel.transact(
            lambda views: _removal(views, lambda e: _now(e) in doomed, when_empty=projects),
            scope=projects)

    @hookimpl
    def add_nat(self, bridges: Sequence[Bridge]) -> None:
        specs = [s for b in bridges for s in rules.nat_specs(b)]
        if specs:
            self._add(specs, _projects(bridges))

    @hookimpl
    def add_forward(self, forwards: Sequence[Forward]) -> None:
        specs = [s for f in forwards for s in rules.forward_specs(f)]
        if specs:
            self._add(specs, _projects(forwards), _former_accepts(forwards))

    @hookimpl
    def add_link(self, links: Sequence[Link]) -> None:
        specs = [s for k in links for s in rules.link_specs(k)]
        if specs:
            self._add(specs, _projects(links))

    @hookimpl
    def remove_forward(self, forwards: Sequence[Forward]) -> None:
        doomed = {s for f in forwards for s in rules.forward_specs(f)}
        doomed |= _former_accepts(forwards)
        if doomed:
            self._remove(doomed, _projects(forwards))

    @hookimpl
    def remove_link(self, links: Sequence[Link]) -> None:
        doomed = {s for k in links for s in rules.link_specs(k)}
        if doomed:
            self._remove(doomed, _projects(links))

    @hookimpl
    def remove_nat(self, bridges: Sequence[Bridge]) -> None:
        if not rules.nat_doomed(bridges, set()):    # also checks the values first
            return
        projects = _projects(bridges)

        def plan(views: Mapping[str, View]) -> dict[str, list[Op]]:
            doomed = rules.nat_doomed(bridges, _keys(views))
            return _removal(views, lambda e: _now(e) in doomed, when_empty=projects)

        self.kernel.transact(plan, scope=projects)

    @hookimpl
    def remove_unrecognised(self, project: str) -> None:
        self.kernel.transact(
            lambda views: _removal(views, lambda e: _unrecognised(e, project)),
            scope={project})

    @hookimpl
    def cleanup(self, project: str) -> None:
        self.kernel.transact(
            lambda views: _removal(views, lambda e: _tagged(e, project) is not None,
                                   teardown={project}),
            scope={project})

    @hookimpl
    def list_rules(self, project: str | None) -> Ruleset:
        if project is None:
            return _read_ruleset(self.kernel.read())
        return _read_ruleset(self.kernel.read({project})).of_project(project)

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
