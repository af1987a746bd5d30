"""python-iptables, used safely: lazy import, one commit per table under
the xtables lock, bounded retries, and rollback of tables already committed
when a later one fails.

iptc's tables are process-wide singletons whose handle (and socket) belongs
to the network namespace they were opened in; every transaction therefore
starts with ``refresh()`` in the caller's namespace, turns autocommit off
for its duration and restores it afterwards.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from locker import faults
from locker.errors import BackendError
from locker.names import JUMP_COMMENT, Tag

from locker_iptables.entries import Entry, RuleBuilder, read_chain, restore
from locker_iptables.loader import load_iptc, only_tables
from locker_iptables.lock import xtables_lock
from locker_iptables.rules import (BASE, DISPATCH_CHAIN, ENTRY_CHAINS, FAMILY, HEADS,
                                   PROJECT_PREFIX, TABLES, UNREAD_CHAINS, Spec, dispatch_spec,
                                   jump_specs, project_chain, saver, table_label)

__all__ = ["Entry", "Kernel", "Op", "Plan", "View", "load_iptc"]

_PROCESS_LOCK = threading.RLock()


class CommitFailed(Exception):
    """``iptc_commit`` refused a table: ``errno`` is the kernel's reason
    (``EAGAIN``: another writer replaced the table since it was read)."""

    def __init__(self, table: str, errno_value: int, text: str) -> None:
        super().__init__(f"can't commit the {table} table: {text}")
        self.errno = errno_value


@lru_cache(maxsize=1)
def _errno_location() -> Any:
    location = ctypes.CDLL(None).__errno_location
    location.restype = ctypes.POINTER(ctypes.c_int)
    return location


def commit(table: Any, label: str | None = None) -> None:
    """Commit an iptc table, raising CommitFailed with the errno that
    ``iptc_commit`` left (python-iptables' ``Table.commit`` raises with a
    message only; it reads nothing between the failed call and its
    ``strerror``, which leaves errno as it is)."""
    errno_at = _errno_location()()
    errno_at[0] = 0
    try:
        table.commit()
    except load_iptc().IPTCError as err:
        code = errno_at[0]
        raise CommitFailed(label or table.name, code, f"{err} (errno {code}: "
                           f"{os.strerror(code) if code else 'none'})") from None


@dataclass
class View:
    """The chains of one table that matter to Locker, as read at the start
    of a transaction: Locker's shared chains, the built-ins jumping to
    them, and the own chains of the projects in ``scope`` (of every project
    when ``scope`` is None). Entries of other projects in the shared
    chains are read for their comment only (``Entry.decoded`` False)."""

    table: str
    chains: dict[str, list[Entry]]
    scope: frozenset[str] | None = None

    def in_scope(self, project: str) -> bool:
        return self.scope is None or project in self.scope

    def jumps(self, jump: Spec) -> list[Entry]:
        """Locker's jumps ``jump`` (one of ``jump_specs``): exactly that
        rule, in its parent chain."""
        return [e for e in self.chains.get(jump.chain, ())
                if e.comment == JUMP_COMMENT and e.spec == jump]

    def table_jumps(self) -> list[Spec]:
        return [j for j in jump_specs() if j.table == self.table]

    def head_in_place(self) -> bool:
        """Whether the first rules of the chain ``HEAD`` jumps from are
        exactly ``HEAD``, in its order (only in HEAD's table)."""
        head = HEADS.get(self.table)
        if head is None:
            return True
        first = self.chains.get(head[0].chain, [])[:len(head)]
        return [(e.comment, e.spec) for e in first] == [(JUMP_COMMENT, j) for j in head]

    def stray_jumps(self) -> list[tuple[str, Entry]]:
        """(parent chain, entry) of each rule with the jump comment that is
        not one of Locker's jumps (an altered one)."""
        exact = {id(e) for jump in self.table_jumps() for e in self.jumps(jump)}
        parents = sorted({j.chain for j in self.table_jumps()})
        return [(parent, e) for parent in parents for e in self.chains.get(parent, ())
                if e.comment == JUMP_COMMENT and id(e) not in exact]

    def all_entries(self) -> Iterator[tuple[str, Entry]]:
        """The entries of every chain read: Locker's and the built-ins
        jumping to them (where a tagged rule is in the wrong chain)."""
        for chain, entries in self.chains.items():
            for entry in entries:
                yield chain, entry

    def tagged(self) -> Iterator[tuple[str, Entry, Tag]]:
        """(chain, entry, tag) of every decoded entry with Locker's tag."""
        for chain, entries in self.chains.items():
            for entry in entries:
                if entry.decoded:
                    tag = Tag.parse(entry.comment)
                    if tag is not None:
                        yield chain, entry, tag

    def dispatches(self, project: str) -> tuple[list[Entry], list[Entry]]:
        """The project's exact dispatch rules in this table's shared chain,
        and its altered ones (its dispatch tag, another rule)."""
        wanted = dispatch_spec(self.table, project)
        exact, altered = [], []
        for entry in self.chains.get(DISPATCH_CHAIN[self.table], ()):
            tag = Tag.parse(entry.comment) if entry.decoded else None
            if tag is not None and tag.purpose == "dispatch" and tag.project == project:
                (exact if entry.spec == wanted else altered).append(entry)
        return exact, altered

    def entry_missing(self) -> list[str]:
        """One phrase per missing shared chain or jump and per duplicate
        jump of this table."""
        label = table_label(self.table)
        problems = [f"chain {chain} in table {label}"
                    for chain in ENTRY_CHAINS[self.table] if chain not in self.chains]
        where = " (ip6tables)" if FAMILY[self.table] == 6 else ""
        for jump in self.table_jumps():
            count = len(self.jumps(jump))
            if count == 0:
                problems.append(f"jump from {jump.chain} to {jump.target}{where}")
            elif count > 1:
                problems.append(f"{count - 1} duplicate jump(s) from {jump.chain} "
                                f"to {jump.target}{where}")
        problems += [f"altered jump rule in chain {parent}{where}"
                     for parent, _ in self.stray_jumps()]
        head = HEADS.get(self.table)
        if head and head[0].chain in self.chains and not self.head_in_place() and all(
                len(self.jumps(jump)) == 1 for jump in head):
            problems.append(f"jumps to {' and '.join(j.target for j in head)} not the first "
                            f"rules of {head[0].chain}{where}")
        return problems

    def project_missing(self, project: str) -> list[str]:
        """One phrase per missing piece of the project's own chain in this
        table and its dispatch rule."""
        chain = project_chain(self.table, project)
        shared = DISPATCH_CHAIN[self.table]
        problems = []
        where = " (ip6tables)" if FAMILY[self.table] == 6 else ""
        if chain not in self.chains:
            problems.append(f"chain {chain} of project {project} in table "
                            f"{table_label(self.table)}")
        exact, altered = self.dispatches(project)
        if not exact:
            problems.append(f"dispatch rule jump {chain} in chain {shared}{where}")
        elif len(exact) > 1:
            problems.append(f"{len(exact) - 1} duplicate dispatch rule(s) jump {chain} "
                            f"in chain {shared}{where}")
        problems += [f"altered dispatch rule of project {project} in chain {shared}{where}"
                     for _ in altered]
        return problems

    def projects(self) -> set[str]:
        """The projects with a tagged rule (other than a dispatch rule) in
        this table, or (of those in scope) an own chain."""
        found = {t.project for _, _, t in self.tagged() if t.purpose != "dispatch"}
        found |= {p for p in self.scope or () if project_chain(self.table, p) in self.chains}
        return found

    def anything(self) -> bool:
        """Some of Locker's chains or jumps are in this table."""
        return (any(chain in self.chains for chain in ENTRY_CHAINS[self.table])
                or any(self.jumps(jump) for jump in self.table_jumps()))


# ---------------------------------------------------------------- changes


@dataclass(frozen=True)
class Op:
    """One change to a table: ``create`` a chain, ``insert`` a spec at
    ``position``, ``append`` a spec, ``delete`` the rule at ``position``
    (``entry`` is kept for the rollback), or ``delete_chain`` an empty
    chain nothing jumps to any more."""

    kind: str
    chain: str
    spec: Spec | None = None
    position: int = 0
    entry: Entry | None = None


Plan = Callable[[Mapping[str, View]], Mapping[str, Sequence[Op]]]


_NAMES_FILE = {4: "/proc/thread-self/net/ip_tables_names",
               6: "/proc/thread-self/net/ip6_tables_names"}


def _tables_present(family: int) -> set[str] | None:
    try:
        with open(_NAMES_FILE[family]) as names:
            return set(names.read().split())
    except FileNotFoundError:
        # ip6_tables not loaded: no IPv6 table to read (IPv4-only hosts keep
        # working); IPv4 keeps its old answer, "cannot tell".
        return set() if family == 6 else None
    except OSError:
        return None


def _present(names: Iterable[str]) -> list[str]:
    """Those of the tables (of ``locker_iptables.rules.TABLES``) that exist
    in this network namespace (all of them when that cannot be told), in
    ``TABLES`` order."""
    names = set(names)
    present = {family: _tables_present(family) for family in (4, 6)}
    return [n for n in TABLES if n in names
            and (present[FAMILY[n]] is None or BASE[n] in present[FAMILY[n]])]


class Kernel:
    """Transactions on the legacy iptables tables of the current network
    namespace."""

    def __init__(self, lock_timeout: float = 10.0, retries: int = 5,
                 backoff: float = 0.05) -> None:
        self.lock_timeout = lock_timeout
        self.retries = retries
        self.backoff = backoff
        #: Test hook: called as (table name, iptc table, is last table)
        #: right before each commit of a change.
        self.before_commit: Callable[[str, Any, bool], None] | None = None
        #: How many transactions were retried after EAGAIN (for tests and
        #: benchmarks).
        self.retried = 0

    @contextmanager
    def _tables(self, names: Sequence[str]) -> Iterator[dict[str, Any]]:
        """The iptc tables, fresh in this namespace, with autocommit off;
        autocommit is restored and pending changes dropped afterwards."""
        iptc = load_iptc()
        tables: dict[str, Any] = {}
        saved: dict[str, bool] = {}
        try:
            for name in names:
                table = (iptc.Table6 if FAMILY[name] == 6 else iptc.Table)(BASE[name])
                saved[name] = table.autocommit
                table.autocommit = False
                tables[name] = table
                table.refresh()
            with only_tables(iptc, list(tables)):
                yield tables
        except iptc.IPTCError as err:
            raise BackendError(f"Cannot read the iptables tables: {err}; check that "
                               "the ip_tables (and, for IPv6, ip6_tables) kernel modules "
                               "are available.") from None
        finally:
            for name, table in tables.items():
                try:
                    table.autocommit = False
                    table.refresh()
                except Exception:  # noqa: BLE001 - best effort, the error is raised above
                    pass
                table.autocommit = saved[name]

    def _view(self, name: str, table: Any, scope: frozenset[str] | None) -> View:
        iptc = load_iptc()

        def wanted(comment: str | None) -> bool:
            if scope is None or comment is None or comment == JUMP_COMMENT:
                return True
            tag = Tag.parse(comment)
            return tag is None or tag.project in scope

        chains: dict[str, list[Entry]] = {}
        if scope is None:
            prefix = PROJECT_PREFIX[name]
            own = [c.name for c in table.chains if c.name.startswith(prefix)]
        else:
            own = [project_chain(name, project) for project in sorted(scope)]
        for chain_name in (*ENTRY_CHAINS[name], *own):
            if chain_name in UNREAD_CHAINS:
                if table.is_chain(chain_name):
                    chains[chain_name] = []
            elif chain_name not in chains and table.is_chain(chain_name):
                chains[chain_name] = read_chain(iptc, name, table, chain_name, specs=True,
                                                wanted=wanted)
        for chain_name in sorted({j.chain for j in jump_specs() if j.table == name}):
            if chain_name not in chains and table.is_chain(chain_name):
                chains[chain_name] = read_chain(iptc, name, table, chain_name, specs=False,
                                                wanted=wanted)
        return View(name, chains, scope)

    def read(self, scope: Iterable[str] | None = None) -> dict[str, View]:
        """Locker's shared chains, the built-in chains jumping to them and
        the own chains of the projects in ``scope`` (every project's when
        None). Tables not yet instantiated in this namespace read as empty
        (reading does not create them)."""
        scope = None if scope is None else frozenset(scope)
        names = _present(TABLES)
        with _PROCESS_LOCK, self._tables(names) as tables:
            views = {name: self._view(name, table, scope) for name, table in tables.items()}
        for name in TABLES:
            views.setdefault(name, View(name, {}, scope))
        return views

    def transact(self, plan: Plan, scope: Iterable[str] | None = None,
                 create: Iterable[str] = ()) -> None:
        """Read the tables (as ``read(scope)``), let ``plan`` say what to
        change, and commit each changed table once, under the xtables lock.
        ``create``: the tables to instantiate when they are not yet (those
        the plan adds to); other tables are read and changed only when they
        exist (a table not instantiated holds nothing to remove). A commit
        that fails because another writer changed the table in between is
        undone and retried; any other failure undoes what was committed and
        raises BackendError. ``plan`` may raise BackendError before anything
        changes."""
        iptc = load_iptc()
        scope = None if scope is None else frozenset(scope)
        create = set(create)
        present = _present(TABLES)
        names = [n for n in TABLES if n in create or n in present]
        with _PROCESS_LOCK, xtables_lock(self.lock_timeout), self._tables(names) as tables:
            for attempt in range(1, self.retries + 1):
                views = {name: self._view(name, table, scope) for name, table in tables.items()}
                for name in TABLES:
                    views.setdefault(name, View(name, {}, scope))
                ops = {name: list(o) for name, o in plan(views).items() if o}
                if not ops:
                    return
                try:
                    self._commit_all(iptc, tables, ops)
                    return
                except iptc.XTablesError as err:
                    raise BackendError(
                        f"python-iptables could not build a rule ({err}); nothing was "
                        "changed. Check that the iptables extensions (libxt_*.so) are "
                        "installed and XTABLES_LIBDIR points at them.") from None
                except CommitFailed as err:
                    if err.errno == errno.EAGAIN and attempt < self.retries:
                        self.retried += 1
                        time.sleep(self.backoff * attempt)
                        for table in tables.values():
                            table.refresh()
                        continue
                    raise BackendError(
                        f"iptables refused Locker's change ({err}); nothing was changed. "
                        + ("Another program keeps changing the tables without taking "
                           "the xtables lock; try again when it is done."
                           if err.errno == errno.EAGAIN else
                           "Check `dmesg` for the kernel's reason.")) from None
                except iptc.IPTCError as err:
                    raise BackendError(
                        f"iptables refused Locker's change ({err}); nothing was changed. "
                        "Check `dmesg` for the kernel's reason.") from None

    def _commit_all(self, iptc: Any, tables: Mapping[str, Any],
                    ops: Mapping[str, Sequence[Op]]) -> None:
        names = [n for n in TABLES if n in ops]
        done: list[tuple[str, list[Op]]] = []
        try:
            for name in names:
                table = tables[name]
                journal = self._apply(iptc, table, ops[name])
                if self.before_commit:
                    self.before_commit(name, table, name == names[-1])
                commit(table, table_label(name))
                done.append((name, journal))
                table.refresh()
                if name != names[-1]:
                    faults.point("rules-half-applied")
        except BaseException:
            for name in names:
                tables[name].refresh()  # drop what was not committed
            self._undo(iptc, tables, done)
            raise

    def _apply(self, iptc: Any, table: Any, ops: Sequence[Op]) -> list[Op]:
        journal: list[Op] = []
        builder = RuleBuilder(iptc)
        for op in ops:
            if op.kind == "create":
                table.create_chain(op.chain)
            elif op.kind == "insert":
                table.insert_entry(op.chain, builder.entry(op.spec), op.position)
            elif op.kind == "append":
                table.append_entry(op.chain, builder.entry(op.spec))
            elif op.kind == "delete":
                _delete_at(table, op.chain, op.position)
            elif op.kind == "delete_chain":
                table.delete_chain(op.chain)
            else:
                raise ValueError(f"unknown op {op.kind}")
            journal.append(op)
        return journal

    def _undo(self, iptc: Any, tables: Mapping[str, Any],
              done: Sequence[tuple[str, list[Op]]]) -> None:
        """Put back tables committed earlier in a failed transaction."""
        for name, journal in reversed(done):
            table = tables[name]
            for attempt in range(1, self.retries + 1):
                try:
                    table.refresh()
                    for op in reversed(journal):
                        _revert(iptc, name, table, op)
                    commit(table, table_label(name))
                    table.refresh()
                    break
                except (CommitFailed, iptc.IPTCError) as err:
                    table.refresh()
                    if getattr(err, "errno", None) == errno.EAGAIN and attempt < self.retries:
                        time.sleep(self.backoff * attempt)
                        continue
                    raise BackendError(
                        f"Locker's change to the iptables {table_label(name)} table failed and "
                        f"could not be undone ({err}); run `{saver(name)}` to "
                        "check it, then `locker cleanup` or `locker ports`.") from None


def _delete_at(table: Any, chain: str, position: int) -> None:
    # python-iptables deletes by rule content, which fails for some rules
    # read back from the kernel; libiptc's delete by number is exact.
    ok = table._iptc.iptc_delete_num_entry(chain.encode(), ctypes.c_uint(position),
                                           table._handle)
    if ok != 1:
        raise load_iptc().IPTCError(f"can't delete rule {position} of {chain}: "
                                    f"{table.strerror()}")


def _revert(iptc: Any, name: str, table: Any, op: Op) -> None:
    chain = iptc.Chain(table, op.chain) if table.is_chain(op.chain) else None
    if op.kind == "create":
        if chain is not None:
            table.flush_entries(op.chain)
            table.delete_chain(op.chain)
    elif op.kind == "delete_chain":
        if chain is None:
            table.create_chain(op.chain)
    elif op.kind in ("insert", "append") and chain is not None:
        for entry in read_chain(iptc, name, table, op.chain, specs=True):
            if entry.spec == op.spec:
                _delete_at(table, op.chain, entry.index)
                break
    elif op.kind == "delete" and chain is not None and op.entry is not None:
        length = len(read_chain(iptc, name, table, op.chain, specs=False))
        restore(iptc, name, table, op.chain, op.entry, min(op.position, length))
