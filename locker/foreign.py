"""Port forwards that other tools put in the kernel: a DNAT for a host port
a project is about to forward is worth a warning (Docker, libvirt, a hand
rule), since only one of the two will get the traffic.

Read-only and cheap: ``nft -j list chains`` and one ``list chain`` per nat
prerouting chain of another table, and the legacy store's nat table when
it is loaded. A tool that is not installed, or that does not answer within
``locker.blockers.TIMEOUT`` seconds, is passed over: this is a warning,
never a refusal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from locker import blockers
from locker.names import TAG_PREFIX

LOCKER_TABLE = ("ip", "locker")
_IP_TABLES_NAMES = Path("/proc/thread-self/net/ip_tables_names")

Runner = Callable[[Sequence[str]], "str | None"]


@dataclass(frozen=True)
class ForeignDnat:
    """A DNAT of another tool's for ``port``/``protocol`` (None: any)."""

    port: int
    protocol: str | None
    where: str  # "nftables table ip nat, chain PREROUTING"


def run_briefly(argv: Sequence[str]) -> str | None:
    """A command's output, or None when it is missing, fails or hangs
    (``locker.blockers.run_briefly``, which bounds every probe)."""
    done = blockers.run_briefly(argv)
    return done.stdout if done is not None and done.returncode == 0 else None


def _nft_json(run: Runner, *argv: str) -> list[dict]:
    out = run(["nft", "-j", *argv])
    try:
        return json.loads(out)["nftables"] if out else []
    except (ValueError, KeyError, TypeError):
        return []


def _ports_of(expr: Iterable[dict]) -> list[tuple[int, str | None]]:
    """The destination ports a rule's matches name, with their protocol."""
    found = []
    for item in expr:
        match = item.get("match") if isinstance(item, dict) else None
        if not isinstance(match, dict):
            continue
        left = match.get("left")
        payload = left.get("payload") if isinstance(left, dict) else None
        if not isinstance(payload, dict) or payload.get("field") != "dport":
            continue
        protocol = payload.get("protocol")
        right = match.get("right")
        values = right.get("set", []) if isinstance(right, dict) else [right]
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool):
                found.append((value, protocol if protocol in ("tcp", "udp") else None))
    return found


def nft_dnats(run: Runner = run_briefly) -> list[ForeignDnat]:
    """DNAT rules in nat prerouting chains of other nftables tables (the
    iptables-nft ones included)."""
    found = []
    for item in _nft_json(run, "list", "chains"):
        chain = item.get("chain")
        if not isinstance(chain, dict) or chain.get("type") != "nat" \
                or chain.get("hook") != "prerouting" \
                or (chain.get("family"), chain.get("table")) == LOCKER_TABLE:
            continue
        family, table, name = chain.get("family"), chain.get("table"), chain.get("name")
        where = f"nftables table {family} {table}, chain {name}"
        for entry in _nft_json(run, "list", "chain", str(family), str(table), str(name)):
            rule = entry.get("rule") if isinstance(entry, dict) else None
            if not isinstance(rule, dict) or str(rule.get("comment", "")).startswith(TAG_PREFIX):
                continue
            expr = rule.get("expr", [])
            if any(isinstance(e, dict) and "dnat" in e for e in expr):
                found += [ForeignDnat(port, protocol, where) for port, protocol in _ports_of(expr)]
    return found


_DPORT = re.compile(r"(?:^|\s)-p (tcp|udp)\b.*?--dports? (\S+)")


def legacy_dnats(run: Runner = run_briefly,
                 names: Path = _IP_TABLES_NAMES) -> list[ForeignDnat]:
    """DNAT rules of the legacy iptables nat table, when it is loaded (asking
    never loads it)."""
    try:
        if "nat" not in names.read_text().split():
            return []
    except OSError:
        return []
    out = run(["iptables-legacy-save", "-t", "nat"]) or ""
    found = []
    for line in out.splitlines():
        if not line.startswith("-A ") or "-j DNAT" not in line or f'"{TAG_PREFIX}:' in line \
                or f" {TAG_PREFIX}:" in line:
            continue
        match = _DPORT.search(line)
        if match:
            chain = line.split()[1]
            for port in match.group(2).split(","):
                if port.isdigit():
                    found.append(ForeignDnat(int(port), match.group(1),
                                             f"iptables-legacy nat chain {chain}"))
    return found


def clashes(ports: Iterable[tuple[int, str]], dnats: Iterable[ForeignDnat]) -> list[str]:
    """A warning for each of ``ports`` (host port, protocol) that a foreign
    DNAT also takes."""
    dnats = list(dnats)
    warnings = []
    for port, protocol in sorted(set(ports)):
        for dnat in dnats:
            if dnat.port == port and dnat.protocol in (None, protocol):
                warnings.append(f"Host port {port}/{protocol} is also forwarded by a rule of "
                                f"another tool ({dnat.where}); only one of them gets the "
                                f"traffic. Remove that rule or choose another port.")
                break
    return warnings
