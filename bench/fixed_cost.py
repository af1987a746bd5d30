"""The fixed cost of a command: `locker ports`, `links` and `status` with
nothing to do, beside `python3 -c pass`, both through the LXC-capable
launcher of the end-to-end world (a host and an outside namespace, a real
busybox container with one forward). Medians of 7, alternating. As root:

    .venv/bin/python bench/fixed_cost.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from world import World  # noqa: E402 (the e2e harness is not a package)

PROJECT = "containers:\n  web:\n    template: {name: busybox}\n    ports: ['8080:80']\n"
REPEAT = 7


def median_seconds(run: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    world = World(Path(tempfile.mkdtemp()), "nftables", "netlink")
    try:
        project = world.project("fast", PROJECT)
        world.locker(project, "create")
        world.locker(project, "start")
        bare = median_seconds(lambda: world.in_host([sys.executable, "-c", "pass"]))
        for command in ("ports", "links", "status"):
            took = median_seconds(lambda: world.locker(project, command))
            print(f"locker {command:<7} {took:.3f} s   python -c pass {bare:.3f} s   "
                  f"ratio {took / bare:.1f}")
        world.locker(project, "cleanup")
        world.locker(project, "rm")
    finally:
        world.close()


if __name__ == "__main__":
    main()
