#!/work/main/.venv/bin/python
"""Benchmark: ``locker ports`` adding 1,000 port forwards (10 running
busybox containers x 100 ports) through the nftables backend, end to end,
against ``nft -f`` loading the same 2,000 rules.

Run as root from anywhere: ``/work/main/.venv/bin/python bench/nftables_forwards.py``
(``BENCH_REPETITIONS=N`` to change the 5 repetitions). Everything happens in
a network namespace made for the run; see bench/README.md.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from common import Bench, is_forward_comment, main_for

TABLE = ("ip", "locker")
_CHAIN = re.compile(r"^\s*chain (\S+) \{")
_COMMENT = re.compile(r'comment "([^"]*)"\s*$')


def snapshot(bench: Bench) -> list[str]:
    """The port-forward rules in Locker's table, as ``CHAIN<TAB>RULE``."""
    listing = bench.run("nft", "list", "table", *TABLE)
    rules, chain = [], None
    for line in listing.splitlines():
        found = _CHAIN.match(line)
        if found:
            chain = found.group(1)
            continue
        comment = _COMMENT.search(line)
        if chain and comment and is_forward_comment(comment.group(1)):
            rules.append(f"{chain}\t{line.strip()}")
    return sorted(rules)


def baseline_file(rules: list[str]) -> str:
    """One nft script adding every rule: nft applies a file as one batch."""
    return "".join(f"add rule {' '.join(TABLE)} {chain} {rule}\n"
                   for chain, rule in (line.split("\t", 1) for line in rules))


def baseline_argv(path: Path) -> list[str]:
    return ["nft", "-f", str(path)]


if __name__ == "__main__":
    sys.exit(main_for("nftables: 1,000 forwards", 0.5, [], snapshot, baseline_file,
                      baseline_argv))
