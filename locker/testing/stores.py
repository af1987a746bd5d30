"""The kernel's rule stores as the conformance suite reads and breaks them,
with each store's own tool, never through the backend under test.

A firewall backend keeps its rules in one store (its test class names it,
``rule_store``):

``nftables``
    Tables whose name starts with ``locker`` hold Locker's rules (the
    nftables backend's is ``ip locker``). Read and changed with ``nft -j``.
``iptables-legacy`` / ``iptables-nft``
    Locker's chains are named ``LOCKER_*``; the jumps into them carry
    ``locker.names.JUMP_COMMENT``. Read with ``iptables-*-save``, changed
    with ``iptables-*``.

In every store a *rule* of Locker's is a rule whose comment is a
``locker.names.Tag``, or, for nftables, the elements of sets and maps that
carry one tag and one key (a DNAT kept as an address map and a port map
element is one rule). Structural rules (tag purpose ``dispatch``) are not
counted.

``FOREIGN`` holds another tool's rules for each store, at the hooks Locker
uses; the suite loads all of them (for every backend, whatever its store)
and compares ``foreign_state`` byte for byte.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from locker.names import JUMP_COMMENT, USER_CHAIN
from locker.testing.netns import NetNS

#: Tables iptables-nft manages in nf_tables: dumped with iptables-nft-save.
XT_TABLES = {"filter", "nat", "mangle", "raw", "security"}
COUNTERS = re.compile(r"\[\d+:\d+\]")

FOREIGN = {
    "nftables": """
table inet admin {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state invalid drop comment "admin"
        iifname "eth9" oifname "eth8" accept
    }
    chain input {
        type filter hook input priority filter; policy accept;
        tcp dport 22 accept
    }
}
table ip adminnat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        tcp dport 2222 dnat to 192.0.2.5:22 comment "other tool"
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr 172.31.0.0/16 masquerade
    }
}
""",
    "iptables-legacy": """\
*nat
:ADMIN_NAT - [0:0]
-A PREROUTING -p tcp --dport 2222 -m comment --comment admin -j DNAT --to-destination 192.0.2.5:22
-A PREROUTING -j ADMIN_NAT
-A POSTROUTING -s 198.51.100.0/24 -j MASQUERADE
-A ADMIN_NAT -p udp --dport 999 -j RETURN
COMMIT
*filter
:ADMIN - [0:0]
-A FORWARD -s 203.0.113.0/24 -j DROP
-A FORWARD -j ADMIN
-A ADMIN -p tcp --dport 22 -m comment --comment "admin ssh" -j ACCEPT
COMMIT
""",
    "iptables-nft": """\
*nat
:NFT_ADMIN_NAT - [0:0]
-A PREROUTING -p tcp --dport 2223 -m comment --comment admin -j DNAT --to-destination 192.0.2.6:22
-A PREROUTING -j NFT_ADMIN_NAT
-A POSTROUTING -s 198.51.101.0/24 -j MASQUERADE
COMMIT
*filter
:NFT_ADMIN - [0:0]
-A FORWARD -s 203.0.114.0/24 -j DROP
-A FORWARD -j NFT_ADMIN
-A NFT_ADMIN -p tcp --dport 22 -m comment --comment "admin ssh" -j ACCEPT
COMMIT
""",
}

#: The tool each store needs.
TOOLS = {"nftables": "nft", "iptables-legacy": "iptables-legacy-restore",
         "iptables-nft": "iptables-nft-restore"}


def available(store: str) -> bool:
    return shutil.which(TOOLS[store]) is not None


def add_foreign(netns: NetNS, store: str) -> None:
    """Load ``FOREIGN[store]`` into the namespace."""
    if store == "nftables":
        netns.run(["nft", "-f", "-"], input=FOREIGN[store])
    else:
        netns.run([f"{store}-restore", "-w", "--noflush"], input=FOREIGN[store])


def foreign_state(netns: NetNS) -> str:
    """Everything in every store that is not Locker's, without counters."""
    parts = []
    if available("nftables"):
        parts.append(Nft().foreign(netns))
    for store in ("iptables-legacy", "iptables-nft"):
        if available(store):
            parts.append(Iptables(store).foreign(netns))
    return "\n".join(parts)


def is_locker_comment(comment: str | None) -> bool:
    return bool(comment) and comment.startswith("locker:") and not comment.endswith(":dispatch")


@dataclass
class Piece:
    """One of Locker's rules in the kernel, and how to act on it."""

    comment: str
    delete: list[dict] = field(default_factory=list)   # nft: JSON commands
    rule: dict | None = None                            # nft: the rule itself
    elements: list[tuple[dict, Any, Any]] = field(default_factory=list)  # (map, key, value)
    where: tuple[str, str, int] | None = None          # iptables: table, chain, number
    words: list[str] | None = None                      # iptables: the rule as saved


class Nft:
    name = "nftables"

    def run(self, netns: NetNS, *argv: str, **kwargs) -> str:
        return netns.run(["nft", *argv], **kwargs).stdout

    def apply(self, netns: NetNS, commands: list[dict]) -> None:
        netns.run(["nft", "-j", "-f", "-"], input=json.dumps({"nftables": commands}))

    def tables(self, netns: NetNS) -> list[tuple[str, str]]:
        return sorted(tuple(line.split()[1:3]) for line in
                      self.run(netns, "list", "tables").splitlines() if line.strip())

    def lockers(self, netns: NetNS) -> list[tuple[str, str]]:
        return [(f, n) for f, n in self.tables(netns) if n.startswith("locker")]

    def foreign(self, netns: NetNS) -> str:
        return "".join(self.run(netns, "list", "table", f, n) for f, n in self.tables(netns)
                       if not n.startswith("locker") and not (f in ("ip", "ip6")
                                                              and n in XT_TABLES))

    def state(self, netns: NetNS) -> str:
        return "".join(self.run(netns, "list", "table", f, n) for f, n in self.lockers(netns))

    def listing(self, netns: NetNS) -> list[dict]:
        items = []
        for family, name in self.lockers(netns):
            items += json.loads(self.run(netns, "-j", "-a", "list", "table", family,
                                         name))["nftables"]
        return items

    def rules(self, netns: NetNS) -> list[dict]:
        return [item["rule"] for item in self.listing(netns) if "rule" in item]

    def pieces(self, netns: NetNS) -> list[Piece]:
        pieces: list[Piece] = []
        for rule in self.rules(netns):
            if is_locker_comment(rule.get("comment")):
                pieces.append(Piece(rule["comment"], [{"delete": {"rule": {
                    k: rule[k] for k in ("family", "table", "chain", "handle")}}}], rule=rule))
        grouped: dict[tuple[str, str], Piece] = {}
        for item in self.listing(netns):
            body = item.get("map") or item.get("set")
            if body is None:
                continue
            for elem in body.get("elem", []):
                key, value = (elem[0], elem[1]) if isinstance(elem, list) else (elem, None)
                if not (isinstance(key, dict) and "elem" in key):
                    continue
                comment = key["elem"].get("comment")
                if not is_locker_comment(comment):
                    continue
                bare = key["elem"]["val"]
                group = (comment, json.dumps(bare))
                if group not in grouped:
                    grouped[group] = Piece(comment)
                    pieces.append(grouped[group])
                piece = grouped[group]
                piece.delete.append({"delete": {"element": {
                    "family": body["family"], "table": body["table"], "name": body["name"],
                    "elem": [bare]}}})
                piece.elements.append((body, key, value))
        return pieces

    def delete_piece(self, netns: NetNS, piece: Piece) -> None:
        self.apply(netns, piece.delete)

    def set_dnat_port(self, netns: NetNS, piece: Piece, port: int) -> None:
        if piece.rule is not None:
            rule = json.loads(json.dumps(piece.rule))
            dnats = [e["dnat"] for e in rule["expr"] if "dnat" in e]
            assert dnats, f"the rule {piece.comment} has no dnat statement: {rule}"
            for dnat in dnats:
                dnat["port"] = port
            self.apply(netns, [{"replace": {"rule": {k: rule[k] for k in (
                "family", "table", "chain", "handle", "expr", "comment")}}}])
            return
        commands = []
        for body, key, value in piece.elements:
            new = _with_port(value, port)
            if new is None:
                continue
            where = {k: body[k] for k in ("family", "table", "name")}
            commands.append({"delete": {"element": {**where, "elem": [key["elem"]["val"]]}}})
            commands.append({"add": {"element": {**where, "elem": [[key, new]]}}})
        assert commands, f"no element of {piece.comment} holds a port"
        self.apply(netns, commands)

    def chain_home(self, netns: NetNS, chain: str) -> tuple[str, str]:
        for item in self.listing(netns):
            body = item.get("chain")
            if body and body["name"] == chain:
                return body["family"], body["table"]
        raise AssertionError(f"no table of Locker's holds the chain {chain}")

    def add_tagged_rule(self, netns: NetNS, comment: str, chain: str) -> None:
        family, table = self.chain_home(netns, chain)
        self.run(netns, "add", "rule", family, table, chain,
                 f'tcp dport 99 accept comment "{comment}"')

    def jumps(self, netns: NetNS) -> list[tuple[dict, str]]:
        found = []
        for rule in self.rules(netns):
            if rule.get("comment") != JUMP_COMMENT:
                continue
            for expr in rule["expr"]:
                target = (expr.get("jump") or expr.get("goto") or {}).get("target")
                if target:
                    found.append((rule, target))
        return found

    def jump_counts(self, netns: NetNS) -> dict[str, int]:
        return dict(Counter(target for _, target in self.jumps(netns)))

    def delete_jump(self, netns: NetNS, chain: str) -> None:
        rule = next(r for r, target in self.jumps(netns) if target == chain)
        self.apply(netns, [{"delete": {"rule": {
            k: rule[k] for k in ("family", "table", "chain", "handle")}}}])

    def add_jump(self, netns: NetNS, chain: str) -> None:
        rule = next(r for r, target in self.jumps(netns) if target == chain)
        self.apply(netns, [{"add": {"rule": {
            k: rule[k] for k in ("family", "table", "chain", "expr", "comment")}}}])

    def delete_chain(self, netns: NetNS, chain: str) -> None:
        family, table = self.chain_home(netns, chain)
        while any(target == chain for _, target in self.jumps(netns)):
            self.delete_jump(netns, chain)
        self.run(netns, "flush", "chain", family, table, chain)
        self.run(netns, "delete", "chain", family, table, chain)

    def drop_after_forward(self, netns: NetNS) -> None:
        rule = next(r for r, target in self.jumps(netns) if target == "LOCKER_FORWARD")
        self.run(netns, "add", "rule", rule["family"], rule["table"], rule["chain"], "drop")

    def drop_in_user_chain(self, netns: NetNS, source: str) -> None:
        family, table = self.chain_home(netns, USER_CHAIN)
        self.run(netns, "add", "rule", family, table, USER_CHAIN, "ip", "saddr", source, "drop")

    def user_chain_rules(self, netns: NetNS) -> int:
        return sum(1 for rule in self.rules(netns) if rule["chain"] == USER_CHAIN)


def _with_port(value: Any, port: int) -> Any:
    if isinstance(value, int):
        return port
    if isinstance(value, dict) and "concat" in value:
        parts = [port if isinstance(v, int) else v for v in value["concat"]]
        return {"concat": parts} if parts != value["concat"] else None
    return None


class Iptables:
    def __init__(self, name: str) -> None:
        self.name = name  # iptables-legacy or iptables-nft

    def run(self, netns: NetNS, *argv: str) -> None:
        netns.run([self.name, "-w", *argv])

    def save(self, netns: NetNS) -> list[tuple[str, str]]:
        """(table, line) of the save output, without comments and counters."""
        out = netns.run([f"{self.name}-save"]).stdout
        table, lines = "", []
        for line in out.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line.startswith("*"):
                table = line[1:]
            lines.append((table, COUNTERS.sub("", line)))
        return lines

    @staticmethod
    def is_lockers(line: str) -> bool:
        return (line.startswith((":LOCKER_", "-A LOCKER_"))
                or f" --comment {JUMP_COMMENT} " in line + " "
                or " --comment locker:" in line)

    def foreign(self, netns: NetNS) -> str:
        return "\n".join(f"{t} {line}" for t, line in self.save(netns)
                         if not self.is_lockers(line))

    def state(self, netns: NetNS) -> str:
        return "\n".join(f"{t} {line}" for t, line in self.save(netns) if self.is_lockers(line))

    def rules(self, netns: NetNS) -> list[tuple[str, str, int, list[str]]]:
        found, numbers = [], {}
        for table, line in self.save(netns):
            words = shlex.split(line)
            if words[:1] == ["-A"]:
                numbers[table, words[1]] = numbers.get((table, words[1]), 0) + 1
                found.append((table, words[1], numbers[table, words[1]], words))
        return found

    def pieces(self, netns: NetNS) -> list[Piece]:
        return [Piece(comment, where=(table, chain, number), words=words)
                for table, chain, number, words in self.rules(netns)
                for comment in [_comment(words)] if is_locker_comment(comment)]

    def delete_piece(self, netns: NetNS, piece: Piece) -> None:
        table, chain, number = piece.where
        self.run(netns, "-t", table, "-D", chain, str(number))

    def set_dnat_port(self, netns: NetNS, piece: Piece, port: int) -> None:
        table, chain, number = piece.where
        words = list(piece.words)
        assert "--to-destination" in words, f"the rule {piece.comment} is no DNAT: {words}"
        i = words.index("--to-destination") + 1
        words[i] = f"{words[i].rsplit(':', 1)[0]}:{port}"
        self.run(netns, "-t", table, "-R", chain, str(number), *words[2:])

    def chain_home(self, netns: NetNS, chain: str) -> str:
        for table, line in self.save(netns):
            if line.split()[:1] == [f":{chain}"]:
                return table
        raise AssertionError(f"no table holds the chain {chain}")

    def add_tagged_rule(self, netns: NetNS, comment: str, chain: str) -> None:
        self.run(netns, "-t", self.chain_home(netns, chain), "-A", chain, "-p", "tcp",
                 "--dport", "99", "-m", "comment", "--comment", comment, "-j", "ACCEPT")

    def jumps(self, netns: NetNS) -> list[tuple[str, str, int, list[str]]]:
        return [r for r in self.rules(netns) if _comment(r[3]) == JUMP_COMMENT
                and "-j" in r[3]]

    def jump_counts(self, netns: NetNS) -> dict[str, int]:
        return dict(Counter(words[words.index("-j") + 1] for *_, words in self.jumps(netns)))

    def _jump(self, netns: NetNS, chain: str) -> tuple[str, str, int, list[str]]:
        return next(r for r in self.jumps(netns) if r[3][r[3].index("-j") + 1] == chain)

    def delete_jump(self, netns: NetNS, chain: str) -> None:
        table, parent, number, _ = self._jump(netns, chain)
        self.run(netns, "-t", table, "-D", parent, str(number))

    def add_jump(self, netns: NetNS, chain: str) -> None:
        table, _, _, words = self._jump(netns, chain)
        self.run(netns, "-t", table, *words)

    def delete_chain(self, netns: NetNS, chain: str) -> None:
        table = self.chain_home(netns, chain)
        while chain in self.jump_counts(netns):
            self.delete_jump(netns, chain)
        self.run(netns, "-t", table, "-F", chain)
        self.run(netns, "-t", table, "-X", chain)

    def drop_after_forward(self, netns: NetNS) -> None:
        table, parent, _, _ = self._jump(netns, "LOCKER_FORWARD")
        self.run(netns, "-t", table, "-A", parent, "-j", "DROP")

    def drop_in_user_chain(self, netns: NetNS, source: str) -> None:
        self.run(netns, "-t", self.chain_home(netns, USER_CHAIN), "-A", USER_CHAIN,
                 "-s", source, "-j", "DROP")

    def user_chain_rules(self, netns: NetNS) -> int:
        return sum(1 for _, chain, _, _ in self.rules(netns) if chain == USER_CHAIN)


def _comment(words: list[str]) -> str | None:
    return words[words.index("--comment") + 1] if "--comment" in words else None


def store(name: str) -> Nft | Iptables:
    if name == "nftables":
        return Nft()
    if name in ("iptables-legacy", "iptables-nft"):
        return Iptables(name)
    raise ValueError(f"unknown rule store {name!r}: nftables, iptables-legacy or iptables-nft")
