"""Benchmark: a small project's commands beside a big neighbour.

A project of 1 running busybox container with 10 forwards (project
``bench``, real LXC in a namespace made for the run) runs ``locker ports``
(after ``rmports``), ``locker ports`` with nothing to do, ``locker status``
and ``locker start`` (everything running: a repair that finds nothing)
with and without a neighbour project of 5,000 forwards (``BENCH_NEIGHBOUR``)
whose rules the firewall backend's own hooks put in the same namespace
(its containers need not exist: only its rules are in the way). Both
cases alternate in the same loop; each prints its median and the ratio.

    .venv/bin/python bench/neighbour.py                 # nftables
    .venv/bin/python bench/neighbour.py --backend iptables

``BENCH_REPETITIONS=N`` (default 7). Nothing runs in the machine's own
network namespace; the containers are stopped and destroyed at the end.
"""

from __future__ import annotations

import os
import signal
import sys

from common import PYTHON, Bench, Timings, machine, timed

NEIGHBOUR = """
import sys
from ipaddress import IPv4Address, IPv4Network
from locker.model import Bridge, Forward
from locker.plugins import new_manager
backend, count = sys.argv[1], int(sys.argv[2])
if backend == "iptables":
    from locker_iptables import IptablesBackend as Backend
else:
    from locker_nftables import NftablesBackend as Backend
hook = new_manager(Backend()).hook
if count:
    hook.add_nat(bridges=[Bridge("neighbour", "locker_neighb", IPv4Network("10.250.0.0/24"))])
    hook.add_forward(forwards=[
        Forward("neighbour", f"c{i % 250}", 30000 + i, IPv4Address(f"10.250.0.{i % 250 + 2}"),
                1000 + i // 250) for i in range(count)])
else:
    hook.cleanup(project="neighbour")
"""

COMMANDS = (("ports", ("rmports",)), ("ports (nothing to do)", ()), ("status", ()),
            ("start (nothing to do)", ()))


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    backend_args = sys.argv[1:]
    backend = backend_args[-1] if backend_args else "nftables"
    repetitions = int(os.environ.get("BENCH_REPETITIONS", 7))
    size = int(os.environ.get("BENCH_NEIGHBOUR", 5000))
    times = {(mode, name): Timings(f"{name}, {mode}")
             for mode in ("alone", "neighbour") for name, _ in COMMANDS}
    with Bench(backend_args, containers=1, ports=10) as bench:
        for rep in range(repetitions):
            modes = ("alone", "neighbour") if rep % 2 == 0 else ("neighbour", "alone")
            for mode in modes:
                count = size if mode == "neighbour" else 0
                timed(bench.in_ns(PYTHON, "-c", NEIGHBOUR, backend, str(count)), bench.env)
                for name, before in COMMANDS:
                    for command in before:
                        bench.locker(command)
                    verb = name.split()[0]
                    times[(mode, name)].seconds.append(bench.locker(verb)[0])
    print(f"\n== {backend}: project of 1 container and 10 forwards, alone and beside "
          f"{size:,} forwards of another project ({repetitions} repetitions)")
    print("| command | alone median / min | with neighbour median / min | ratio (medians) |")
    print("| --- | --- | --- | --- |")
    for name, _ in COMMANDS:
        alone, near = times[("alone", name)], times[("neighbour", name)]
        print(f"| `{name}` | {alone.median:.3f} / {alone.best:.3f} | "
              f"{near.median:.3f} / {near.best:.3f} | {near.median / alone.median:.2f} |")
    for timing in times.values():
        print(f"  {timing}")
    print("  machine:")
    for key, value in machine().items():
        print(f"    {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
