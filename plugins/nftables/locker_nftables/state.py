"""What Locker's table holds, read from the kernel for one project (its own
chains, maps and sets, and the shared entry chains) or for all, and kept up
to date with what the backend commits itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from locker.names import JUMP_COMMENT, Tag

from locker_nftables import kernel, layout, rules
from locker_nftables.family import IP, IP6, from_family, to_family
from locker_nftables.kernel import TABLE, Command


@dataclass
class Found:
    """A tagged rule or element of Locker's table. ``key`` None: not one
    Locker would write (unrecognised); ``legacy``: a rule of the old layout
    (in the shared chains), moved by the next adding hook."""

    key: Any
    tag: Tag
    comment: str
    location: str
    text: str
    delete: list[Command] | None   # None: a rule added by this process, handle unknown
    legacy: bool = False
    elements: tuple[layout.Element, ...] = ()


SHARED = tuple(b.name for b in rules.BASE_CHAINS) + rules.REGULAR_CHAINS


def _project_of_store(name: str) -> str:
    return name.split("_", 1)[0]


@dataclass
class TableState:
    """One of Locker's tables (``family``: ``ip``, or ``ip6`` for the
    projects with IPv6), held in the ip family's words (``family``
    module); its commands are too, and are given the table's family by
    ``commands``."""

    exists: bool = False
    scope: str | None = None
    family: str = IP
    chains: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)                  # store names
    found: list[Found] = field(default_factory=list)
    jumps: dict[str, list[int | None]] = field(default_factory=dict)  # base chain -> handles
    stray_jumps: list[tuple[str, int]] = field(default_factory=list)
    skeleton: dict[tuple, list[int | None]] = field(default_factory=dict)  # structural -> handles
    stray_skeleton: list[tuple[str, str, int]] = field(default_factory=list)  # project, chain, h
    #: the jumps at the head of LOCKER_FORWARD: (target, handle, position in the chain)
    leading: list[tuple[str, int | None, int]] = field(default_factory=list)

    # ------------------------------------------------------------- reading

    def commands(self, commands: list[Command]) -> list[Command]:
        """``commands`` for this table's family."""
        return to_family(commands, self.family)

    @property
    def version(self) -> int:
        return 6 if self.family == IP6 else 4

    @classmethod
    def read(cls, project: str | None, family: str = IP) -> TableState:
        """The whole table (``project`` None, one libnftables call); or the
        table's rules without any element, then the project's own maps and
        sets, one call each (one call for all of them fails in libnftables
        1.0.6, which fills its cache for a batch's first listing only)."""
        if project is None:
            listing = kernel.list_table(family)
            return cls.parse(from_family(listing or [], family), listing is not None, None,
                             family)
        rules_only = from_family(kernel.list_rules_only(family), family)
        if rules_only is None:
            return cls.parse([], False, project, family)
        defined = {(i.get("map") or i.get("set"))["name"] for i in rules_only
                   if "map" in i or "set" in i}
        wanted = [s for s in layout.stores(project) if s.name in defined]
        documents = from_family(kernel.read(to_family([s.list_command() for s in wanted], family),
                                            f"list the maps and sets of project {project}"),
                                family)
        objects = [i for i in rules_only if "map" not in i and "set" not in i]
        objects += [i for i in rules_only if ("map" in i or "set" in i)
                    and (i.get("map") or i.get("set"))["name"] not in {s.name for s in wanted}]
        objects += [item for document in documents if document for item in document]
        return cls.parse(objects, True, project, family)

    @classmethod
    def parse(cls, objects: list[dict], exists: bool, scope: str | None,
              family: str = IP) -> TableState:
        state = cls(exists=exists, scope=scope, family=family)
        bases = {base.name: base for base in rules.BASE_CHAINS}
        listed: dict[str, list[layout.Element]] = {}
        positions: dict[str, int] = {}
        for item in objects:
            if "chain" in item:
                state.chains.add(item["chain"]["name"])
            elif "map" in item or "set" in item:
                body = item.get("map") or item.get("set")
                listed[body["name"]] = layout.elements_of(item)
            elif "rule" in item:
                chain = item["rule"]["chain"]
                positions[chain] = positions.get(chain, -1) + 1
                state._rule(item["rule"], bases, positions[chain])
        for name, elements in listed.items():
            state._store(name, elements, listed)
        return state

    def _store(self, name: str, elements: list[layout.Element],
               listed: dict[str, list[layout.Element]]) -> None:
        project = _project_of_store(name)
        spec = next((s for s in layout.stores(project) if s.name == name), None) \
            if layout.parse_tag(f"locker:{project}:dispatch") else None
        if spec is None:
            return
        self.present.add(name)
        ports: dict[tuple, layout.Element] = {}
        if spec.purpose == "dnat":
            partner = layout.port_store(project, spec).name
            ports = {e.key: e for e in listed.get(partner, [])}
        elif spec.purpose == "dnat-port":
            addresses = {e.key for e in listed.get(
                next(s.name for s in layout.stores(project)
                     if s.purpose == "dnat" and s.host_ip == spec.host_ip), [])}
            elements = [e for e in elements if e.key not in addresses]  # paired there
        ranges: dict[str, list[layout.Element]] = {}
        for element in elements:
            tag = layout.parse_tag(element.comment)
            if tag is None:
                continue
            group = (element,)
            if spec.purpose == "dnat" and element.key in ports:
                group = (element, ports[element.key])
            if spec.purpose in ("dnat", "forward") and layout.range_mark(tag) is not None:
                ranges.setdefault(element.comment, []).extend(group)
                continue
            parsed = layout.parse_elements(project, spec, group) \
                if spec.purpose != "dnat-port" and len(group) == (
                    2 if spec.purpose == "dnat" else 1) else None
            text = " . ".join(map(str, element.key)) + "".join(
                " : " + " . ".join(map(str, e.data)) for e in group if e.data is not None)
            self.found.append(Found(parsed, tag, element.comment,
                                    f"{self.family} {TABLE} {spec.kind} {name}", text,
                                    [e.delete_command() for e in group], elements=group))
        for comment, members in ranges.items():
            group = tuple(members)
            first = group[0]
            text = (f"{len(group)} elements of comment {comment}, as "
                    + " . ".join(map(str, first.key)) + "".join(
                        " : " + " . ".join(map(str, e.data)) for e in group[:2]
                        if e.data is not None and e.key == first.key))
            self.found.append(Found(layout.parse_range_group(project, spec, group),
                                    layout.parse_tag(comment), comment,
                                    f"{self.family} {TABLE} {spec.kind} {name}", text,
                                    [e.delete_command() for e in group], elements=group))

    def _rule(self, rule: dict, bases: dict, position: int) -> None:
        chain, comment, expr = rule["chain"], rule.get("comment"), rule.get("expr", [])
        handle = rule["handle"]
        if chain == rules.LOCKER_USER:
            return  # the administrator's: never read, reported or changed
        if comment == JUMP_COMMENT:
            if chain in bases and bases[chain].is_jump(expr):
                self.jumps.setdefault(chain, []).append(handle)
            elif chain == rules.LOCKER_FORWARD and (target := _leading_target(expr)):
                self.leading.append((target, handle, position))
            else:
                self.stray_jumps.append((chain, handle))
            return
        tag = Tag.parse(comment)
        if tag is None:
            return
        if tag.purpose == "dispatch" and tag.container is None:
            key = layout.structural_key(chain, expr)
            if key in layout.structural_keys(tag.project):
                self.skeleton.setdefault((tag.project,) + key, []).append(handle)
            else:
                self.stray_skeleton.append((tag.project, chain, handle))
            return
        parsed = rules.parse_rule(chain, comment, expr, self.version)
        key, legacy = parsed if parsed is not None else (None, False)
        self.found.append(Found(key, tag, comment, f"{self.family} {TABLE} {chain}",
                                rules.rule_text(expr), [rules.delete_command(handle, chain)],
                                legacy))

    # ------------------------------------------------------------- queries

    def of(self, project: str | None) -> list[Found]:
        return [f for f in self.found if project in (None, f.tag.project)]

    def keys(self, project: str | None = None, legacy: bool | None = None) -> set:
        return {f.key for f in self.of(project)
                if f.key is not None and legacy in (None, f.legacy)}

    def with_keys(self, keys: set) -> list[Found]:
        return [f for f in self.found if f.key in keys]

    def unrecognised(self, project: str | None = None) -> list[Found]:
        return [f for f in self.of(project) if f.key is None]

    def projects(self) -> set[str]:
        """Every project that has something in the table."""
        names = {f.tag.project for f in self.found} | {k[0] for k in self.skeleton}
        names |= {p for p, _, _ in self.stray_skeleton}
        names |= {_project_of_store(n) for n in self.present}
        for chain in self.chains:
            for prefix in ("LOCKER_PRE_", "LOCKER_FWD_"):
                if chain.startswith(prefix):
                    names.add(chain[len(prefix):])
        return names

    def owns_rules(self, project: str) -> bool:
        """Whether anything tagged (other than the skeleton) is in the
        project's own chains and stores."""
        own = {f"{self.family} {TABLE} {layout.pre_chain(project)}",
               f"{self.family} {TABLE} {layout.fwd_chain(project)}"}
        return any(f.location in own or any(_project_of_store(e.store) == project
                                            for e in f.elements)
                   for f in self.found)

    def entry_missing(self, project: str | None = None) -> list[str]:
        """One phrase per missing or damaged piece of Locker's entry points
        (shared chains, jumps) and of the projects' skeletons."""
        if not self.exists:
            return []
        where = f"in table {self.family} {TABLE}"
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
        problems += self._leading_missing()
        problems += [f"altered jump rule in chain {chain}" for chain, _ in self.stray_jumps]
        for name in sorted(self.projects() if project is None else {project}):
            problems += self._project_missing(name)
        return problems

    def leading_in_place(self) -> bool:
        return [(t, i) for t, _, i in self.leading] == [
            (t, i) for i, t in enumerate(rules.LEADING_JUMPS)]

    def _leading_missing(self) -> list[str]:
        """What is wrong with the jumps that must begin LOCKER_FORWARD."""
        if self.leading_in_place():
            return []
        chain, problems = rules.LOCKER_FORWARD, []
        for target in rules.LEADING_JUMPS:
            count = sum(1 for t, _, _ in self.leading if t == target)
            if count == 0:
                problems.append(f"jump from {chain} to {target}")
            elif count > 1:
                problems.append(f"{count - 1} duplicate jump(s) from {chain} to {target}")
        return problems or [f"jumps to {' and '.join(rules.LEADING_JUMPS)} not first in "
                            f"{chain}, in this order"]

    def _project_missing(self, project: str) -> list[str]:
        mine = self.of(project)
        legacy = [f for f in mine if f.legacy]
        if not [f for f in mine if f.key is not None or f.legacy]:
            return []
        where = f"in table {self.family} {TABLE}"
        problems = [f"chain {name} of project {project} {where}"
                    for name in (layout.pre_chain(project), layout.fwd_chain(project))
                    if name not in self.chains]
        problems += [f"{store.kind} {store.name} of project {project} {where}"
                     for store in layout.stores(project) if store.name not in self.present]
        for piece in layout.structural(project):
            count = len(self.skeleton.get((project, piece.chain, piece.expr), ()))
            what = f"{_describe(piece)} in chain {piece.chain}"
            if count == 0:
                problems.append(f"dispatch rule {what}")
            elif count > 1:
                problems.append(f"{count - 1} duplicate dispatch rule(s) {what}")
        problems += [f"altered dispatch rule of project {project} in chain {chain}"
                     for p, chain, _ in self.stray_skeleton if p == project]
        if legacy:
            problems.append(f"{len(legacy)} rule(s) of project {project} in the old layout "
                            f"(shared chains), moved into its own chains by the next command")
        return problems

    @property
    def complete(self) -> bool:
        return self.exists and not self.entry_missing(self.scope)

    # ------------------------------------------------------------- writing

    def base_setup(self) -> list[Command]:
        """Create the table and shared chains and the missing jumps; drop
        duplicate and altered jumps."""
        commands = rules.table_commands()
        for base in rules.BASE_CHAINS:
            handles = self.jumps.get(base.name, [])
            if not handles:
                commands.append(rules.jump_command(base))
            commands.extend(rules.delete_command(h, base.name) for h in handles[1:]
                            if h is not None)
        commands.extend(rules.delete_command(h, chain) for chain, h in self.stray_jumps)
        if not self.leading_in_place():
            commands.extend(rules.delete_command(h, rules.LOCKER_FORWARD)
                            for _, h, _ in self.leading if h is not None)
            commands.extend(rules.leading_jump_commands())
        return commands

    def project_setup(self, project: str) -> list[Command]:
        """Create the project's chains, stores and missing dispatch rules;
        drop duplicate and altered ones."""
        commands = layout.skeleton_commands(project)
        heads = []
        for piece in layout.structural(project):
            handles = self.skeleton.get((project, piece.chain, piece.expr), [])
            if not handles:
                (heads if piece.first else commands).append(piece.add_command(project))
            commands.extend(rules.delete_command(h, piece.chain) for h in handles[1:]
                            if h is not None)
        commands.extend(rules.delete_command(h, chain)
                        for p, chain, h in self.stray_skeleton if p == project)
        return commands + heads

    def project_teardown(self, project: str) -> list[Command]:
        """Delete the project's dispatch rules, chains and stores."""
        commands = [rules.delete_command(h, piece.chain)
                    for piece in layout.structural(project)
                    for h in self.skeleton.get((project, piece.chain, piece.expr), [])
                    if piece.chain in rules.REGULAR_CHAINS and h is not None]
        commands += [rules.delete_command(h, chain) for p, chain, h in self.stray_skeleton
                     if p == project and chain in rules.REGULAR_CHAINS]
        return commands + layout.teardown_commands(project, self.chains, self.present)

    def skeleton_of(self, project: str) -> bool:
        """Whether any piece of the project's skeleton is there."""
        return any(k[0] == project for k in self.skeleton) or any(
            s[0] == project for s in self.stray_skeleton) or bool(
            {layout.pre_chain(project), layout.fwd_chain(project)} & self.chains) or any(
            _project_of_store(n) == project for n in self.present)

    def needs_handles(self, project: str) -> bool:
        """Whether something of the project was added by this process
        (handle unknown): deleting it needs a fresh read."""
        return any(f.delete is None for f in self.of(project)) or any(
            None in handles for key, handles in self.skeleton.items() if key[0] == project)

    # --------------------------------------------- keeping up with commits

    def committed_base(self) -> None:
        self.exists = True
        self.chains |= set(SHARED)
        for base in rules.BASE_CHAINS:
            self.jumps[base.name] = self.jumps.get(base.name, [None])[:1] or [None]
        self.stray_jumps = []
        if not self.leading_in_place():
            self.leading = [(t, None, i) for i, t in enumerate(rules.LEADING_JUMPS)]

    def committed_project(self, project: str) -> None:
        self.chains |= {layout.pre_chain(project), layout.fwd_chain(project)}
        self.present |= {s.name for s in layout.stores(project)}
        for piece in layout.structural(project):
            key = (project, piece.chain, piece.expr)
            self.skeleton[key] = self.skeleton.get(key, [None])[:1] or [None]
        self.stray_skeleton = [s for s in self.stray_skeleton if s[0] != project]

    def committed_teardown(self, project: str) -> None:
        self.chains -= {layout.pre_chain(project), layout.fwd_chain(project)}
        self.present -= {s.name for s in layout.stores(project)}
        self.skeleton = {k: v for k, v in self.skeleton.items() if k[0] != project}
        self.stray_skeleton = [s for s in self.stray_skeleton if s[0] != project]

    def committed_removal(self, gone: list[Found]) -> None:
        ids = {id(f) for f in gone}
        self.found = [f for f in self.found if id(f) not in ids]

    def committed_addition(self, key: Any, comment: str, location: str,
                           elements: tuple[layout.Element, ...]) -> None:
        tag = layout.parse_tag(comment)
        self.found.append(Found(key, tag, comment, location, "",
                                [e.delete_command() for e in elements] if elements else None,
                                elements=elements))


def _describe(piece: layout.Structural) -> str:
    expr = layout.thaw(piece.expr)
    if "jump" in expr[-1]:
        return f"jump {expr[-1]['jump']['target']}"
    return f"lookup in {rules.rule_text(expr).split('@')[-1].split()[0]}" \
        if "@" in rules.rule_text(expr) else rules.rule_text(expr)


def rule_for_key(key: Any) -> tuple[rules.Rule | None, tuple[layout.Element, ...]]:
    """What Locker writes now for a key: a rule or elements."""
    purpose, value = key[0], key[1]
    if purpose in ("dnat", "forward"):
        return None, layout.forward_elements(value)[purpose]
    if purpose in ("link", "link-back"):
        return next(r for r in rules.link_rules(value) if r.key == key), ()
    return rules.nat_rule(key), ()


def _leading_target(expr: list) -> str | None:
    """The target of one of the jumps at the head of LOCKER_FORWARD, if
    ``expr`` is exactly one."""
    bare = [e for e in expr if "counter" not in e]
    return next((t for t in rules.LEADING_JUMPS if bare == rules.leading_jump_expr(t)), None)
