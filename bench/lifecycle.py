"""Containers of a project started and stopped in parallel: `locker stop` and
`locker start` of COUNT busybox containers beside the same COUNT `lxc-stop`
/ `lxc-start` run in parallel by hand, and `locker status` of them beside
`lxc-ls -f`, alternating, in the end-to-end world (namespaces and a
temporary lxcpath, cleaned up afterwards). As root:

    BENCH_CONTAINERS=10 .venv/bin/python bench/lifecycle.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable

from running import World, running_project

from locker.testing.lxchost import lxc_command_prefix

COUNT = int(os.environ.get("BENCH_CONTAINERS", "10"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def by_hand(world: World, command: str, names: list[str], *options: str) -> None:
    """``command`` for every container at once, as an administrator's shell
    loop with ``&`` and ``wait`` would."""
    running = [subprocess.Popen([*lxc_command_prefix(world.host.name), command, "-P",
                                 str(world.lxcpath), "-n", name, *options],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for name in names]
    for proc in running:
        proc.wait()


def main() -> None:
    names = [f"c{i}" for i in range(COUNT)]
    text = "containers:\n" + "".join(f"  {n}:\n    template: {{name: busybox}}\n"
                                     for n in names)
    with running_project("bench", text) as (world, project):
        lxc_names = [f"bench_{n}" for n in names]
        rows: dict[str, list[float]] = {k: [] for k in (
            "locker stop", "lxc-stop by hand", "locker start", "lxc-start by hand",
            "locker status", "lxc-ls -f")}
        for _ in range(REPEAT):
            rows["locker status"].append(seconds(lambda: world.locker(project, "status")))
            rows["lxc-ls -f"].append(seconds(lambda: world.lxc("lxc-ls", "-f")))
            rows["locker stop"].append(seconds(lambda: world.locker(project, "stop")))
            rows["locker start"].append(seconds(lambda: world.locker(project, "start")))
            rows["lxc-stop by hand"].append(
                seconds(lambda: by_hand(world, "lxc-stop", lxc_names)))
            rows["lxc-start by hand"].append(
                seconds(lambda: by_hand(world, "lxc-start", lxc_names)))
            world.locker(project, "start")  # rules back for the next round
        median = {k: statistics.median(v) for k, v in rows.items()}
        print(f"{COUNT} containers, {REPEAT} rounds, medians (min):")
        for locker_row, baseline in (("locker stop", "lxc-stop by hand"),
                                     ("locker start", "lxc-start by hand"),
                                     ("locker status", "lxc-ls -f")):
            print(f"  {locker_row:<14} {median[locker_row]:.2f} s ({min(rows[locker_row]):.2f})"
                  f"   {baseline:<18} {median[baseline]:.2f} s ({min(rows[baseline]):.2f})"
                  f"   ratio {median[locker_row] / median[baseline]:.2f}")


if __name__ == "__main__":
    main()
