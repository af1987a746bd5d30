"""Dumps of the legacy iptables store in a test namespace."""

from __future__ import annotations

import re

from locker.testing.netns import NetNS

COUNTERS = re.compile(r"\[\d+:\d+\]")


def save(netns: NetNS) -> list[tuple[str, str]]:
    """(table, line) of ``iptables-legacy-save``, without comments and
    counters."""
    out = netns.run(["iptables-legacy-save"]).stdout
    table, lines = "", []
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("*"):
            table = line[1:]
        lines.append((table, COUNTERS.sub("", line)))
    return lines


def is_lockers(line: str) -> bool:
    return (line.startswith((":LOCKER_", "-A LOCKER_"))
            or " --comment LOCKER " in line + " ")


def foreign_dump(netns: NetNS) -> str:
    return "\n".join(f"{t} {line}" for t, line in save(netns) if not is_lockers(line))


def locker_dump(netns: NetNS) -> str:
    return "\n".join(f"{t} {line}" for t, line in save(netns) if is_lockers(line))


def jumps(netns: NetNS) -> dict[str, int]:
    """How many jump rules (comment LOCKER) lead into each of Locker's
    chains; the nat OUTPUT jump into LOCKER_PREROUTING counts apart, as
    ``LOCKER_PREROUTING from OUTPUT``."""
    counts: dict[str, int] = {}
    for _, line in save(netns):
        match = re.search(r"^-A (\w+) .*--comment LOCKER -j (LOCKER_\w+)$", line)
        if match:
            parent, target = match.groups()
            key = f"{target} from {parent}" if parent == "OUTPUT" else target
            counts[key] = counts.get(key, 0) + 1
    return counts
