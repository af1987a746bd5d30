"""Benchmark: ``locker ports`` adding 1,000 port forwards (10 running
busybox containers x 100 ports; ``BENCH_FORWARDS=100|5000`` for the other
sizes) through the nftables backend, end to end, against ``nft -f``
loading the same elements into the same maps and sets.

Run as root from anywhere: ``.venv/bin/python bench/nftables_forwards.py``
(``BENCH_REPETITIONS=N`` to change the 5 repetitions). Everything happens in
a network namespace made for the run; see bench/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import Bench, is_forward_comment, main_for

TABLE = ("ip", "locker")


def _text(value: object) -> str:
    if isinstance(value, dict) and "concat" in value:
        return " . ".join(_text(v) for v in value["concat"])
    return str(value)


def snapshot(bench: Bench) -> list[str]:
    """The port forwards' elements in Locker's maps and sets, read with
    ``nft -j``, as ``MAP<TAB>KEY comment "TAG"[ : VALUE]``: three per
    forward (the DNAT's address and port, the accept)."""
    listing = json.loads(bench.run("nft", "-j", "list", "table", *TABLE))["nftables"]
    lines = []
    for item in listing:
        body = item.get("map") or item.get("set")
        for elem in (body or {}).get("elem", []):
            key, value = (elem[0], elem[1]) if isinstance(elem, list) else (elem, None)
            comment = key["elem"].get("comment", "")
            if is_forward_comment(comment):
                data = "" if value is None else f" : {_text(value)}"
                lines.append(f'{body["name"]}\t{_text(key["elem"]["val"])} '
                             f'comment "{comment}"{data}')
    return sorted(lines)


def baseline_file(lines: list[str]) -> str:
    """One nft script adding every element: nft applies a file as one batch."""
    return "".join(f"add element {' '.join(TABLE)} {name} {{ {element} }}\n"
                   for name, element in (line.split("\t", 1) for line in lines))


def baseline_argv(path: Path) -> list[str]:
    return ["nft", "-f", str(path)]


if __name__ == "__main__":
    sys.exit(main_for("nftables: 1,000 forwards", 0.5, [], snapshot, baseline_file,
                      baseline_argv, per_forward=3))
