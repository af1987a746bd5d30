"""Benchmark: ``locker --backend iptables ports`` adding 1,000 port
forwards (10 running busybox containers x 100 ports) end to end, against
``iptables-legacy-restore --noflush`` loading the same 2,000 rules.

Run as root: ``/work/main/.venv/bin/python bench/iptables_forwards.py``
(``BENCH_REPETITIONS=N`` to change the 5 repetitions). Everything happens in
a network namespace made for the run; see bench/README.md.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from common import Bench, is_forward_comment, main_for

_TABLE = re.compile(r"^\*(\S+)")
_COMMENT = re.compile(r'--comment ("[^"]*"|\S+)')


def snapshot(bench: Bench) -> list[str]:
    """The port-forward rules in the legacy store, as ``TABLE<TAB>-A ...``."""
    rules, table = [], None
    for line in bench.run("iptables-legacy-save").splitlines():
        found = _TABLE.match(line)
        if found:
            table = found.group(1)
            continue
        comment = _COMMENT.search(line)
        if table and line.startswith("-A ") and comment and \
                is_forward_comment(shlex.split(comment.group(1))[0]):
            rules.append(f"{table}\t{line}")
    return sorted(rules)


def baseline_file(rules: list[str]) -> str:
    """An ``iptables-restore`` file appending every rule, one COMMIT per
    table (one libiptc commit each, like Locker's backend)."""
    tables: dict[str, list[str]] = {}
    for line in rules:
        table, rule = line.split("\t", 1)
        tables.setdefault(table, []).append(rule)
    return "".join(f"*{table}\n" + "".join(f"{rule}\n" for rule in body) + "COMMIT\n"
                   for table, body in sorted(tables.items()))


def baseline_argv(path: Path) -> list[str]:
    return ["iptables-legacy-restore", "-w", "--noflush", str(path)]


if __name__ == "__main__":
    sys.exit(main_for("iptables (legacy): 1,000 forwards", 1.5, ["--backend", "iptables"],
                      snapshot, baseline_file, baseline_argv))
