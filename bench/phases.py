"""Where the time of one ``locker ports`` goes, without a profiler's
overhead: the steps of ``locker.cli.session.open_context`` and
``locker.ops.network.reconcile`` called one by one with the core's own
functions and timed. Printed as JSON (phase -> seconds).

Not run by hand: ``common.phases`` runs it in the benchmark's namespace,
after ``locker rmports``, with the benchmark's project file and lxcpath.
Usage: ``python phases.py FILE LXCPATH [FIREWALL_BACKEND]``.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def warn(message: str) -> None:
    print(message, file=sys.stderr)


def main(file: str, lxcpath: str, backend: str | None) -> dict[str, float]:
    times: dict[str, float] = {}
    mark = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        times[name] = now - mark[0]
        mark[0] = now

    from locker import planner, plugins
    from locker.cli import commands  # noqa: F401  (what the CLI imports)
    from locker.context import Context
    from locker.hostconfig import load_host_config
    from locker.ops import network
    from locker.projectfile import load_project
    from locker.runtime.lxc import LxcRuntime
    lap("import the core (cli, ops, project file, plugins)")

    project = load_project(Path(file), None)
    lap("load the project file (1,000 ports)")
    load_host_config(os.environ)
    lap("load the host file")
    firewall = plugins.select(plugins.FIREWALL, backend, "command line" if backend else
                              "auto-detection", warn)
    lap(f"select the firewall backend ({firewall.name}: import, availability probe)")
    link = plugins.select(plugins.LINK, None, "auto-detection", warn)
    lap(f"select the link backend ({link.name}: import, availability probe)")
    manager = plugins.register(firewall, link, plugins.load_observers(warn), warn)
    lap("register (observers: entry-point scan)")
    ctx = Context(project, manager, LxcRuntime(lxcpath))

    kind = network.FORWARDS
    present = network.states(ctx)
    lap(f"container states ({len(present)} x lxc-info)")
    running = {name for name, state in present.items() if network.is_up(state)}
    with ctx.lock():
        found = kind.scoped(kind.found(ctx.hooks.list_rules(project=project.name)), running)
        lap("list_rules (read the kernel's rules)")
        ips = network.configured_ips(ctx, present)
        desired = kind.scoped(kind.desired(project, ips, running), running)
        todo = planner.changes(desired, found)
        lap(f"plan: addresses from configs, desired, diff ({len(todo.add)} to add)")
        ctx.hooks.add_forward(forwards=list(todo.add))
        lap("add_forward (read again + one transaction)")
    return times


if __name__ == "__main__":
    result = main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    result["total in process (after interpreter start-up)"] = time.perf_counter() - T0
    print(json.dumps(result))
