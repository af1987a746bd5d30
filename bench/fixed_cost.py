"""The fixed cost of a command: `locker ports`, `links` and `status` with
nothing to do, beside `python3 -c pass`, both through the LXC-capable
launcher of the end-to-end world (a host and an outside namespace, a real
busybox container with one forward). Medians of 7. Run as root:

    .venv/bin/python bench/fixed_cost.py
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from world import World
root = Path(tempfile.mkdtemp())
w = World(root, "nftables", "netlink")
try:
    d = w.project("fast", "containers:\n  web:\n    template: {name: busybox}\n    ports: ['8080:80']\n")
    w.locker(d, "create"); w.locker(d, "start")
    def t(f):
        xs=[]
        for _ in range(7):
            a=time.perf_counter(); f(); xs.append(time.perf_counter()-a)
        return statistics.median(xs)
    base = t(lambda: w.in_host([sys.executable, "-c", "pass"]))
    for cmd in ("ports", "status", "links"):
        x = t(lambda: w.locker(d, cmd))
        print(f"{cmd}: {x:.3f}s  python -c pass: {base:.3f}s  ratio {x/base:.1f}")
    w.locker(d, "cleanup"); w.locker(d, "rm")
finally:
    w.close()
