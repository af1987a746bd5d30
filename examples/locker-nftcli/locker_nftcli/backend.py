"""A firewall backend for Locker that drives the ``nft`` command: the
example of the plugin author's guide (docs/plugins.rst).

Every change is one ``nft -f -`` script, which nft applies as one kernel
transaction; every read is ``nft -a list table ip locker_nftcli``. Rules
are plain rules with the value in their matches and the owner in their
comment (``locker.Tag``); nothing is kept between calls.

``LOCKER_FORWARD`` begins with ``jump LOCKER_USER`` and ``jump
LOCKER_ISOLATION``. ``LOCKER_USER`` is the administrator's: it is created
empty and its rules are never read, reported, changed or deleted (nor is
the table). A project's network rules are read into ``locker.pieces``
keys, which make its Bridges (``nat_bridges``) and say what
``remove_nat`` deletes (``nat_doomed``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from locker import (JUMP_COMMENT, Availability, BackendError, Blocker, Bridge, Forward,
                    Link, Ruleset, TaggedRule, Tag, hookimpl)
from locker import blockers
from locker.pieces import nat_bridges, nat_doomed

from locker_nftcli.rules import (BASE_CHAINS, FAMILY, LEADING, TABLE, USER_CHAIN, Rule,
                                 forward_rules, jump, leading_jump, link_rules, nat_rules,
                                 read)

#: Locker's regular chains: those the base chains jump into, and the leading ones.
ENTRY_CHAINS = tuple(dict.fromkeys(
    [target for _, target, _ in BASE_CHAINS.values()] + list(LEADING)))


@dataclass
class Found:
    """A rule as read from the kernel."""
    rule: Rule
    handle: int
    tag: Tag | None
    value: tuple[str, object] | None  # (purpose, value) when it is Locker's rule

    @property
    def nat_key(self) -> tuple | None:
        """The ``locker.pieces`` key of a network rule, else None."""
        if self.value and isinstance(self.value[1], tuple):
            return self.value[1]
        return None


@dataclass
class Table:
    """``ip locker_nftcli`` as read: its chains and their rules."""
    chains: dict[str, list[Found]] = field(default_factory=dict)

    def rules(self) -> Iterable[tuple[str, Found]]:
        for chain, found in self.chains.items():
            for item in found:
                yield chain, item


class NftCliBackend:
    """Locker's rules in the nftables table ``ip locker_nftcli``, through
    the ``nft`` command (setting ``nft``: its path, default ``nft``)."""

    locker_api = 2
    SETTINGS = {"nft": str}

    def __init__(self, nft: str = "nft") -> None:
        self.nft = nft

    # ------------------------------------------------------------ the nft command

    def _run(self, argv: list[str], script: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.nft, *argv], input=script, capture_output=True,
                                  text=True, timeout=30)
        except OSError as exc:
            raise BackendError(f"cannot run {self.nft}: {exc}") from None

    def _apply(self, lines: list[str], what: str) -> None:
        if not lines:
            return
        done = self._run(["-f", "-"], "\n".join(lines) + "\n")
        if done.returncode != 0:
            raise BackendError(f"nft refused to {what}; nothing was changed: "
                               f"{done.stderr.strip()}")

    def _read(self) -> Table | None:
        done = self._run(["-a", "list", "table", FAMILY, TABLE])
        if done.returncode != 0:
            if "No such file or directory" in done.stderr:
                return None
            raise BackendError(f"nft cannot list Locker's table: {done.stderr.strip()}")
        table, chain = Table(), None
        for line in done.stdout.splitlines():
            line = line.strip()
            if line.startswith("chain "):
                chain = line.split()[1]
                table.chains[chain] = []
            elif chain and chain != USER_CHAIN and " # handle " in line:
                body, handle = line.rsplit(" # handle ", 1)
                text, comment = body, ""
                if ' comment "' in body:
                    text, comment = body.split(' comment "', 1)
                    comment = comment.rstrip('"')
                rule = Rule(chain, text, comment)
                table.chains[chain].append(Found(rule, int(handle), Tag.parse(comment),
                                                 read(rule)))
        return table

    # ------------------------------------------------------------- availability

    @hookimpl
    def firewall_availability(self) -> Availability:
        path = shutil.which(self.nft)
        if path is None:
            return Availability(False, f"the {self.nft} command is missing: install nftables")
        try:
            done = self._run(["list", "tables"])
            version = self._run(["--version"]).stdout.strip()
        except BackendError as exc:
            return Availability(False, str(exc))
        if done.returncode != 0:
            return Availability(False, f"nft cannot read the ruleset: {done.stderr.strip()}")
        return Availability(True, "the nft command works here", auto=False,
                            details={"nft": path, "version": version, "table": f"{FAMILY} {TABLE}"})

    # ------------------------------------------------------------------ adding

    def _ensure(self, table: Table | None) -> list[str]:
        """Lines that create the table, its chains and one jump into each."""
        lines = [f"add table {FAMILY} {TABLE}"]
        for name in ENTRY_CHAINS:
            lines.append(f"add chain {FAMILY} {TABLE} {name}")
        for base, (declaration, _, _) in BASE_CHAINS.items():
            lines.append(f"add chain {FAMILY} {TABLE} {base} {{ {declaration} }}")
        for base in BASE_CHAINS:
            found = [f for f in (table.chains.get(base, []) if table else [])
                     if f.rule.comment == jump(base).comment]
            exact = [f for f in found if f.rule == jump(base)]
            for extra in (exact[1:] + [f for f in found if f not in exact]):
                lines.append(f"delete rule {FAMILY} {TABLE} {base} handle {extra.handle}")
            if not exact:
                lines.append(_add(jump(base)))
        forward = table.chains.get("LOCKER_FORWARD", []) if table else []
        if not _leading_in_place(forward):
            # take every jump out of LOCKER_FORWARD, insert both at its head
            lines += [f"delete rule {FAMILY} {TABLE} LOCKER_FORWARD handle {f.handle}"
                      for f in forward if f.rule.comment == JUMP_COMMENT]
            lines += [f'insert rule {FAMILY} {TABLE} LOCKER_FORWARD {leading_jump(t).text} '
                      f'comment "{JUMP_COMMENT}"' for t in reversed(LEADING)]
        if table is not None and not _changes(lines, table):
            return []
        return lines

    def _add(self, wanted: Iterable[Rule], what: str) -> None:
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return
        table = self._read()
        there = {f.rule for _, f in table.rules()} if table else set()
        lines = self._ensure(table) + [_add(r) for r in wanted if r not in there]
        self._apply(lines, what)

    @hookimpl
    def add_nat(self, bridges: Sequence[Bridge]) -> None:
        _refuse_ipv6(bridges)
        self._add([r for b in bridges for r in nat_rules(b)], "add network rules")

    @hookimpl
    def add_forward(self, forwards: Sequence[Forward]) -> None:
        _refuse_ipv6(forwards)
        self._add([r for f in forwards for r in forward_rules(f).values()], "add port forwards")

    @hookimpl
    def add_link(self, links: Sequence[Link]) -> None:
        _refuse_ipv6(links)
        self._add([r for link in links for r in link_rules(link).values()], "add links")

    # ---------------------------------------------------------------- removing

    def _remove(self, doomed, what: str) -> None:
        """Delete every rule of Locker's for which ``doomed(found)`` holds."""
        table = self._read()
        if table is None:
            return
        self._apply([f"delete rule {FAMILY} {TABLE} {chain} handle {f.handle}"
                     for chain, f in table.rules() if f.tag and doomed(f)], what)

    @hookimpl
    def remove_nat(self, bridges: Sequence[Bridge]) -> None:
        table = self._read()
        if table is None or not bridges:
            return
        keys = {f.nat_key for _, f in table.rules() if f.nat_key}
        doomed = nat_doomed(bridges, keys)
        self._remove(lambda f: f.nat_key in doomed, "remove network rules")

    @hookimpl
    def remove_forward(self, forwards: Sequence[Forward]) -> None:
        gone = set(forwards)
        if gone:
            self._remove(lambda f: bool(f.value) and f.value[1] in gone, "remove port forwards")

    @hookimpl
    def remove_link(self, links: Sequence[Link]) -> None:
        gone = set(links)
        if gone:
            self._remove(lambda f: bool(f.value) and f.value[1] in gone, "remove links")

    @hookimpl
    def remove_unrecognised(self, project: str) -> None:
        self._remove(lambda f: f.tag.project == project and _unrecognised(f),
                     "remove unrecognised rules")

    @hookimpl
    def cleanup(self, project: str) -> None:
        self._remove(lambda f: f.tag.project == project, f"remove the rules of {project}")

    # ----------------------------------------------------------------- reading

    @hookimpl
    def list_rules(self, project: str | None) -> Ruleset:
        table = self._read()
        if table is None:
            return Ruleset()
        pieces: dict[object, set[str]] = defaultdict(set)
        keys = set()
        unrecognised = []
        for chain, f in table.rules():
            if not f.tag or (project and f.tag.project != project):
                continue
            if _unrecognised(f):
                unrecognised.append(TaggedRule(f.tag.project, f.rule.comment,
                                               f"{FAMILY} {TABLE} {chain}", f.rule.text))
                continue
            if f.nat_key:
                keys.add(f.nat_key)
            else:
                purpose, value = f.value
                pieces[value].add(purpose)
        complete = {v for v, parts in pieces.items() if len(parts) == 2}
        partial = set(pieces) - complete
        bridges, partial_bridges = nat_bridges(keys)
        partial |= partial_bridges
        missing = _entry_missing(table)
        return Ruleset(nat=frozenset(bridges),
                       forwards=frozenset(v for v in complete if isinstance(v, Forward)),
                       links=frozenset(v for v in complete if isinstance(v, Link)),
                       jumps=not missing, partial=frozenset(partial),
                       unrecognised=tuple(unrecognised), entry_missing=missing)

    @hookimpl
    def find_blockers(self, bridges: Sequence[Bridge]) -> list[Blocker]:
        """firewalld, ufw, and other tables' forward chains that drop."""
        if not bridges:
            return []
        host = blockers.host_firewalls(bridges)
        done = self._run(["-j", "list", "ruleset"])
        items = json.loads(done.stdout or '{"nftables": []}')["nftables"] \
            if done.returncode == 0 else []
        chains, rules = [], defaultdict(list)
        for item in items:
            if "rule" in item:
                r = item["rule"]
                rules[r["family"], r["table"], r["chain"]].append(r["expr"])
            elif "chain" in item and item["chain"].get("hook") == "forward":
                chains.append(item["chain"])
        found = [blockers.nft_chain(c["family"], c["table"], c,
                                    rules[c["family"], c["table"], c["name"]])
                 for c in chains if c["family"] in ("ip", "inet") and c["table"] != TABLE
                 and not host.manages(c["family"], c["table"])]
        return list(host.blockers) + blockers.chain_blockers(found, bridges,
                                                             blockers.nft_chain_fix)


def _add(rule: Rule) -> str:
    return f'add rule {FAMILY} {TABLE} {rule.chain} {rule.text} comment "{rule.comment}"'


def _changes(lines: list[str], table: Table) -> bool:
    """Whether the ensure lines do more than re-add what is there."""
    needed = [line for line in lines if not line.startswith(("add table", "add chain"))]
    chains = set(BASE_CHAINS) | set(ENTRY_CHAINS)
    return bool(needed) or not chains <= table.chains.keys()


def _unrecognised(f: Found) -> bool:
    return f.value is None or f.rule.chain in BASE_CHAINS


def _leading_in_place(forward: list[Found]) -> bool:
    """Whether LOCKER_FORWARD begins with the leading jumps, in order, and
    holds no other jump."""
    jumps = [f for f in forward if f.rule.comment == JUMP_COMMENT]
    wanted = [leading_jump(target) for target in LEADING]
    return [f.rule for f in forward[:len(LEADING)]] == wanted and len(jumps) == len(LEADING)


def _entry_missing(table: Table) -> tuple[str, ...]:
    missing = []
    for base, (_, target, _) in BASE_CHAINS.items():
        if base not in table.chains:
            missing.append(f"the base chain {base} (and its jump into {target}) is missing")
            continue
        if target not in table.chains:
            missing.append(f"the chain {target} is missing")
        jumps = [f for f in table.chains[base] if f.rule.comment == jump(base).comment]
        if not jumps:
            missing.append(f"the jump from {base} into {target} is missing")
        elif len(jumps) > 1 or jumps[0].rule != jump(base):
            missing.append(f"{len(jumps)} jumps from {base} into {target} where Locker "
                           f"writes one")
    for target in LEADING:
        if target not in table.chains:
            missing.append(f"the chain {target} is missing")
    if "LOCKER_FORWARD" in table.chains and not _leading_in_place(table.chains["LOCKER_FORWARD"]):
        missing.append(f"LOCKER_FORWARD does not begin with the jumps into "
                       f"{' and '.join(LEADING)} (and no other jump)")
    return tuple(missing)


def _refuse_ipv6(values: Sequence[Bridge | Forward | Link]) -> None:
    """This example writes IPv4 rules only: an IPv6 value (a project with
    ``ipv6: true``) is a BackendError, before anything is changed."""
    for value in values:
        if getattr(value, "network6", None) is not None or getattr(value, "family", 4) == 6:
            raise BackendError(f"refusing {value}: the nftcli example backend writes IPv4 "
                               "rules only; a project with ipv6: true needs the nftables or "
                               "iptables backend")
