"""Benchmark: the cost of a new TCP connection through Locker's rules.

Three namespaces made for the run: a client, a router holding the rules
(the "host"), and a server standing in for a container, joined by veth
pairs. The router gets 5,000 forwards (``BENCH_FORWARDS``) of one project
to the server's port 80, laid out by the nftables backend's own hooks, and
runs a service of its own on port 9000. The client opens and closes
``BENCH_CONNECTIONS`` (default 400) connections at a time, each timed, to:
the first forward, the last forward, and the router's own service. Each
layout is measured in the same loop, alternating: no rules at all
(baseline: the client reaches the server by routing, and the router's
service), Locker's layout, and the old layout (every DNAT a rule in one
chain, as before issue 9) rebuilt with ``rules.legacy_forward_rules``.
Medians per connection, in microseconds. Nothing runs in the machine's own
namespace; the namespaces and the servers are removed at the end.

    .venv/bin/python bench/packet_path.py
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

from common import PYTHON, machine

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(512)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""

CLIENT = """
import socket, sys, time, json, statistics
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(count):
    t = time.perf_counter()
    c = socket.create_connection((host, port), timeout=5)
    times.append(time.perf_counter() - t)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
    c.close()
print(json.dumps(statistics.median(times[20:]) * 1e6))
"""

RULES = """
import sys
from ipaddress import IPv4Address, IPv4Network
from locker.model import Bridge, Forward
from locker.plugins import new_manager
from locker_nftables import NftablesBackend, kernel, rules
layout, count = sys.argv[1], int(sys.argv[2])
kernel.run([{"add": {"table": {"family": "ip", "name": "locker"}}},
            {"delete": {"table": {"family": "ip", "name": "locker"}}}], "flush")
forwards = [Forward("bench", "web", 10000 + i, IPv4Address("10.250.0.2"), 80)
            for i in range(count)]
bridge = Bridge("bench", "locker_bench", IPv4Network("10.250.0.0/24"))
hook = new_manager(NftablesBackend()).hook
if layout == "locker":
    hook.add_nat(bridges=[bridge])
    hook.add_forward(forwards=forwards)
elif layout == "old":
    hook.add_nat(bridges=[bridge])   # the shared chains and the project's network rules
    kernel.run([r.add_command() for f in forwards for r in rules.legacy_forward_rules(f)],
               "add the old layout")
"""

ROUTER_IP, CLIENT_IP, SERVER_IP = "10.99.1.1", "10.99.1.2", "10.250.0.2"


class World:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = {role: f"lockerpkt-{role}-{tag}" for role in ("client", "router", "server")}
        self.servers: list[subprocess.Popen] = []

    def run(self, role: str, *argv: str, **kwargs) -> str:
        return subprocess.run(["ip", "netns", "exec", self.ns[role], *argv], check=True,
                              capture_output=True, text=True, **kwargs).stdout

    def __enter__(self) -> World:
        try:
            for name in self.ns.values():
                subprocess.run(["ip", "netns", "add", name], check=True)
            c, r, s = (self.ns[k] for k in ("client", "router", "server"))
            self.run("router", "ip", "link", "add", "toclient", "type", "veth", "peer", "name",
                     "eth0", "netns", c)
            self.run("router", "ip", "link", "add", "locker_bench", "type", "veth", "peer",
                     "name", "eth0", "netns", s)
            for role, dev, addr in (("router", "toclient", f"{ROUTER_IP}/24"),
                                    ("router", "locker_bench", "10.250.0.1/24"),
                                    ("client", "eth0", f"{CLIENT_IP}/24"),
                                    ("server", "eth0", f"{SERVER_IP}/24")):
                self.run(role, "ip", "addr", "add", addr, "dev", dev)
                self.run(role, "ip", "link", "set", dev, "up")
                self.run(role, "ip", "link", "set", "lo", "up")
            self.run("server", "ip", "route", "add", "default", "via", "10.250.0.1")
            self.run("client", "ip", "route", "add", "10.250.0.0/24", "via", ROUTER_IP)
            self.run("router", "sysctl", "-qw", "net.ipv4.ip_forward=1")
            for role, port in (("server", "80"), ("router", "9000")):
                server = subprocess.Popen(["ip", "netns", "exec", self.ns[role], PYTHON, "-c",
                                           SERVER, port], stdout=subprocess.PIPE, text=True)
                self.servers.append(server)
                server.stdout.readline()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def teardown(self) -> None:
        for server in self.servers:
            server.kill()
            server.wait()
        for name in self.ns.values():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)

    def lay(self, layout: str, count: int) -> float:
        start = time.perf_counter()
        self.run("router", PYTHON, "-c", RULES, layout, str(count))
        return time.perf_counter() - start

    def connect(self, host: str, port: int, count: int) -> float:
        return json.loads(self.run("client", PYTHON, "-c", CLIENT, host, str(port), str(count)))


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    count = int(os.environ.get("BENCH_FORWARDS", 5000))
    connections = int(os.environ.get("BENCH_CONNECTIONS", 400))
    repetitions = int(os.environ.get("BENCH_REPETITIONS", 5))
    if os.geteuid() != 0:
        raise SystemExit("needs root: makes network namespaces")
    targets = {"first forward": (ROUTER_IP, 10000), "last forward": (ROUTER_IP, 10000 + count - 1),
               "router's own service": (ROUTER_IP, 9000)}
    found: dict[tuple[str, str], list[float]] = {}
    with World() as world:
        for rep in range(repetitions):
            layouts = ["none", "locker", "old"]
            layouts = layouts[rep % 3:] + layouts[:rep % 3]
            for layout in layouts:
                world.lay(layout, count)
                for target, (host, port) in targets.items():
                    if layout == "none" and target != "router's own service":
                        host, port = SERVER_IP, 80     # routed, no rules at all
                    found.setdefault((layout, target), []).append(
                        world.connect(host, port, connections))
    med = {key: statistics.median(values) for key, values in found.items()}
    print(f"\n== new TCP connection, {count:,} forwards, median of {repetitions} x "
          f"{connections} connections (microseconds)")
    print("| target | no rules (baseline) | Locker's layout | old layout |")
    print("| --- | ---: | ---: | ---: |")
    for target in targets:
        print(f"| {target} | {med[('none', target)]:.0f} | {med[('locker', target)]:.0f} | "
              f"{med[('old', target)]:.0f} |")
    own = "router's own service"
    for layout in ("locker", "old"):
        last_first = med[(layout, "last forward")] / med[(layout, "first forward")]
        print(f"  {layout}: last/first {last_first:.2f}, own service against no rules "
              f"{med[(layout, own)] / med[('none', own)]:.2f}")
    print("  (no rules: the forwards' columns are a routed connection to the server itself)")
    for key, values in sorted(found.items()):
        print(f"  {key}: {' '.join(f'{v:.0f}' for v in values)}")
    print("  machine:")
    for key, value in machine().items():
        print(f"    {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
