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
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from locker import faults
from locker.errors import BackendError
from locker.names import JUMP_COMMENT

from locker_iptables.entries import Entry, RuleBuilder, read_chain, restore
from locker_iptables.loader import load_iptc
from locker_iptables.lock import xtables_lock
from locker_iptables.rules import CHAINS, TABLES, Spec, jump_specs

__all__ = ["Entry", "Kernel", "Op", "Plan", "View", "load_iptc"]

EAGAIN_TEXT = "Resource temporarily unavailable"
_PROCESS_LOCK = threading.RLock()


@dataclass
class View:
    """The chains of one table that matter to Locker, as read at the start
    of a transaction: Locker's own chains and the built-ins jumping to them."""

    table: str
    chains: dict[str, list[Entry]]

    def jumps(self, chain: str) -> list[Entry]:
        """Locker's jumps into ``chain``: exactly the rule ``jump_specs``
        gives, in the built-in chain."""
        parent = CHAINS[self.table][chain]
        wanted = next(j for j in jump_specs() if j.target == chain)
        return [e for e in self.chains.get(parent, ())
                if e.comment == JUMP_COMMENT and e.spec == wanted]

    def stray_jumps(self) -> list[tuple[str, Entry]]:
        """(built-in chain, entry) of each rule with the jump comment that is
        not one of Locker's jumps (an altered one)."""
        exact = {id(e) for chain in CHAINS[self.table] for e in self.jumps(chain)}
        return [(parent, e) for parent in sorted(set(CHAINS[self.table].values()))
                for e in self.chains.get(parent, ())
                if e.comment == JUMP_COMMENT and id(e) not in exact]

    def locker_entries(self) -> Iterator[tuple[str, Entry]]:
        for chain in CHAINS[self.table]:
            for entry in self.chains.get(chain, ()):
                yield chain, entry

    def all_entries(self) -> Iterator[tuple[str, Entry]]:
        """The entries of every chain read: Locker's and the built-ins
        jumping to them (where a tagged rule is in the wrong chain)."""
        for chain, entries in self.chains.items():
            for entry in entries:
                yield chain, entry

    def entry_missing(self) -> list[str]:
        """One phrase per missing chain or jump and per duplicate jump of
        this table."""
        problems = []
        for chain, parent in CHAINS[self.table].items():
            if chain not in self.chains:
                problems.append(f"chain {chain} in table {self.table}")
            count = len(self.jumps(chain))
            if count == 0:
                problems.append(f"jump from {parent} to {chain}")
            elif count > 1:
                problems.append(f"{count - 1} duplicate jump(s) from {parent} to {chain}")
        problems += [f"altered jump rule in chain {parent}" for parent, _ in self.stray_jumps()]
        return problems

    def anything(self) -> bool:
        """Some of Locker's chains or jumps are in this table."""
        return any(chain in self.chains or self.jumps(chain) for chain in CHAINS[self.table])


# ---------------------------------------------------------------- changes


@dataclass(frozen=True)
class Op:
    """One change to a table: ``create`` a chain, ``insert`` a spec at
    ``position``, ``append`` a spec, or ``delete`` the rule at ``position``
    (``entry`` is kept for the rollback)."""

    kind: str
    chain: str
    spec: Spec | None = None
    position: int = 0
    entry: Entry | None = None


Plan = Callable[[Mapping[str, View]], Mapping[str, Sequence[Op]]]


def _tables_present() -> set[str] | None:
    try:
        with open("/proc/thread-self/net/ip_tables_names") as names:
            return set(names.read().split())
    except OSError:
        return None


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
                table = iptc.Table(name)
                saved[name] = table.autocommit
                table.autocommit = False
                tables[name] = table
                table.refresh()
            yield tables
        except iptc.IPTCError as err:
            raise BackendError(f"Cannot read the iptables tables: {err}; check that "
                               "the ip_tables kernel module is available.") from None
        finally:
            for name, table in tables.items():
                try:
                    table.autocommit = False
                    table.refresh()
                except Exception:  # noqa: BLE001 - best effort, the error is raised above
                    pass
                table.autocommit = saved[name]

    def _view(self, name: str, table: Any) -> View:
        iptc = load_iptc()
        chains: dict[str, list[Entry]] = {}
        for chain_name in CHAINS[name]:
            if table.is_chain(chain_name):
                chains[chain_name] = read_chain(iptc, name, table, chain_name, specs=True)
        for chain_name in CHAINS[name].values():
            if table.is_chain(chain_name):
                chains[chain_name] = read_chain(iptc, name, table, chain_name, specs=False)
        return View(name, chains)

    def read(self) -> dict[str, View]:
        """Locker's chains and the built-in chains jumping to them. Tables
        not yet instantiated in this namespace read as empty (reading
        does not create them)."""
        present = _tables_present()
        names = [n for n in TABLES if present is None or n in present]
        with _PROCESS_LOCK, self._tables(names) as tables:
            views = {name: self._view(name, table) for name, table in tables.items()}
        for name in TABLES:
            views.setdefault(name, View(name, {}))
        return views

    def transact(self, plan: Plan) -> None:
        """Read the tables, let ``plan`` say what to change, and commit each
        changed table once, under the xtables lock. A commit that fails
        because another writer changed the table in between is undone and
        retried; any other failure undoes what was committed and raises
        BackendError. ``plan`` may raise BackendError before anything changes."""
        iptc = load_iptc()
        with _PROCESS_LOCK, xtables_lock(self.lock_timeout), self._tables(TABLES) as tables:
            for attempt in range(1, self.retries + 1):
                views = {name: self._view(name, table) for name, table in tables.items()}
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
                except iptc.IPTCError as err:
                    if EAGAIN_TEXT in str(err) and attempt < self.retries:
                        self.retried += 1
                        time.sleep(self.backoff * attempt)
                        for table in tables.values():
                            table.refresh()
                        continue
                    raise BackendError(
                        f"iptables refused Locker's change ({err}); nothing was changed. "
                        + ("Another program keeps changing the tables without taking "
                           "the xtables lock; try again when it is done."
                           if EAGAIN_TEXT in str(err) else
                           "Check `dmesg` for the kernel's reason.")) from None

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
                table.commit()
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
                    table.commit()
                    table.refresh()
                    break
                except iptc.IPTCError as err:
                    table.refresh()
                    if EAGAIN_TEXT in str(err) and attempt < self.retries:
                        time.sleep(self.backoff * attempt)
                        continue
                    raise BackendError(
                        f"Locker's change to the iptables {name} table failed and could "
                        f"not be undone ({err}); run `iptables-legacy-save -t {name}` to "
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
    elif op.kind in ("insert", "append") and chain is not None:
        for entry in read_chain(iptc, name, table, op.chain, specs=True):
            if entry.spec == op.spec:
                _delete_at(table, op.chain, entry.index)
                break
    elif op.kind == "delete" and chain is not None and op.entry is not None:
        length = len(read_chain(iptc, name, table, op.chain, specs=False))
        restore(iptc, table, op.chain, op.entry, min(op.position, length))
