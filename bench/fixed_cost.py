"""The fixed cost of a command: `locker ports`, `links` and `status` with
nothing to do, beside `python3 -c pass`, both through the LXC-capable
launcher of the end-to-end world (a host and an outside namespace, a real
busybox container with one forward). Medians of 7, alternating. As root:

    .venv/bin/python bench/fixed_cost.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from running import running_project

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
    with running_project("fast", PROJECT) as (world, project):
        bare = median_seconds(lambda: world.in_host([sys.executable, "-c", "pass"]))
        for command in ("ports", "links", "status"):
            took = median_seconds(lambda: world.locker(project, command))
            print(f"locker {command:<7} {took:.3f} s   python -c pass {bare:.3f} s   "
                  f"ratio {took / bare:.1f}")


if __name__ == "__main__":
    main()
