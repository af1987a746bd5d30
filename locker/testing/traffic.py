"""Real packets for the conformance suites: namespaces joined by veth pairs
to the test's namespace, servers that say who they are and who called, and
a client that says what answered.

Everything is made inside the test's namespace (the one the ``netns``
fixture entered) and namespaces the lab makes; nothing touches the
machine's own. Use it as a context manager inside the test function (which
runs in a process of its own): on leaving, its servers are ended by pid and
its namespaces deleted.

A server answers every TCP connection (and every UDP datagram), over IPv4
and IPv6, with ``LABEL PORT CLIENT_ADDRESS``; ``Lab.call`` returns that line, or None when
nothing answered (refused, dropped, unreachable) within its timeout.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from locker.testing.netns import NetNS

#: How long a client waits for an answer it expects, and for one it must
#: not get (a dropped packet is only seen as silence).
ANSWER_TIMEOUT = 5.0
SILENCE_TIMEOUT = 1.0

_SERVER = r"""
import socket, sys, threading
label, specs = sys.argv[1], sys.argv[2:]
def bound(family, kind, port):
    s = socket.socket(family, kind); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    return s
def serve_tcp(family, port):
    s = bound(family, socket.SOCK_STREAM, port); s.listen(16); ready.release()
    while True:
        c, peer = s.accept()
        c.sendall(f"{label} {port} {peer[0]}\n".encode()); c.close()
def serve_udp(family, port):
    s = bound(family, socket.SOCK_DGRAM, port); ready.release()
    while True:
        _, peer = s.recvfrom(512)
        s.sendto(f"{label} {port} {peer[0]}\n".encode(), peer)
ready = threading.Semaphore(0)
families = [socket.AF_INET]
try:
    bound(socket.AF_INET6, socket.SOCK_DGRAM, 0).close(); families.append(socket.AF_INET6)
except OSError:
    pass
for spec in specs:
    proto, port = spec.split("/")
    target = serve_tcp if proto == "tcp" else serve_udp
    for family in families:
        threading.Thread(target=target, args=(family, int(port)), daemon=True).start()
for _ in range(len(specs) * len(families)):
    ready.acquire()
print("ready", flush=True)
sys.stdin.read()
"""

_CLIENT = r"""
import socket, sys
proto, addr, port, timeout, source = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, kind); s.settimeout(timeout)
if source != "-":
    s.bind((source, 0))
try:
    if proto == "tcp":
        s.connect((addr, port)); data = s.recv(512)
    else:
        s.sendto(b"hello", (addr, port)); data, _ = s.recvfrom(512)
    print(data.decode().strip())
except OSError as exc:
    print(f"no answer: {exc}", file=sys.stderr); sys.exit(1)
"""


def _without_dad(ns: NetNS) -> None:
    """No IPv6 duplicate address detection on the interfaces made from now
    on in ``ns`` (a test namespace): their link-local addresses work at once,
    as the global ones the lab adds (``nodad``) do. Nothing where IPv6 is off."""
    ns.run(["sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad"], check=False)


class Lab:
    """Namespaces around the test's namespace (``host``)."""

    def __init__(self, host: NetNS) -> None:
        self.host = host
        self.servers: list[subprocess.Popen] = []
        self.spaces: dict[str, NetNS] = {}
        self._veths = 0
        _without_dad(host)

    def space(self, name: str) -> NetNS:
        """A namespace of the lab, made on first use."""
        if name not in self.spaces:
            self.spaces[name] = NetNS(f"lab{name[:6]}")
            _without_dad(self.spaces[name])
        return self.spaces[name]

    def wire(self, name: str, host_side: str, host_address: str | None,
             addresses: Sequence[str], gateway: str | None = None,
             master: str | None = None, routes: Sequence[str] = (),
             gateway6: str | None = None, host_address6: str | None = None) -> NetNS:
        """A veth from the host (``host_side``, with ``host_address`` or
        enslaved to ``master``) to the namespace ``name`` (``eth0`` with
        ``addresses``, default route via ``gateway``). IPv6: addresses with
        a colon (added without duplicate address detection, usable at
        once), the default route via ``gateway6``, ``host_address6`` on the
        host's side; ``routes`` with a colon are IPv6 routes."""
        ns = self.space(name)
        self._veths += 1
        inner = f"eth{self._veths}"
        self.host.run(["ip", "link", "add", host_side, "type", "veth", "peer", "name",
                       inner, "netns", ns.name])
        if master:
            self.host.run(["ip", "link", "set", host_side, "master", master])
        if host_address:
            self.host.run(["ip", "addr", "add", host_address, "dev", host_side])
        if host_address6:
            self.host.run(["ip", "-6", "addr", "add", host_address6, "dev", host_side,
                           "nodad"])
        self.host.run(["ip", "link", "set", host_side, "up"])
        for address in addresses:
            ns.run(["ip", "addr", "add", address, "dev", inner,
                    *(["nodad"] if ":" in address else [])])
        ns.run(["ip", "link", "set", inner, "up"])
        if gateway:
            ns.run(["ip", "route", "add", "default", "via", gateway])
        if gateway6:
            ns.run(["ip", "-6", "route", "add", "default", "via", gateway6])
        for route in routes:
            ns.run(["ip", *(["-6"] if ":" in route else []), "route", "add", *route.split()])
        return ns

    def bridge(self, name: str, address: str) -> None:
        """A bridge in the host, made by the suite (the firewall suite has no
        link backend) as a link backend makes it: with ``route_localnet``
        on (for forwards reached at 127.0.0.1 from the host)."""
        self.host.run(["ip", "link", "add", name, "type", "bridge"])
        self.host.run(["ip", "addr", "add", address, "dev", name])
        self.host.run(["ip", "link", "set", name, "up"])
        self.host.run(["sh", "-c", f"echo 1 > /proc/sys/net/ipv4/conf/{name}/route_localnet"])

    def forwarding(self, ipv6: bool = False) -> None:
        self.host.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        if ipv6:
            self.host.run(["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])

    def serve(self, name: str, label: str, *specs: str) -> None:
        """Servers in namespace ``name`` on ``specs`` (``tcp/80``, ``udp/53``)."""
        ns = self.spaces[name] if name != "host" else self.host
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, sys.executable, "-c", _SERVER, label, *specs],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.servers.append(server)
        line = server.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(f"the suite's server {label} in {name} did not start")

    def call(self, name: str, proto: str, address: str, port: int,
             expect: bool = True, source: str | None = None) -> str | None:
        """Connect from namespace ``name``; the answer line, or None."""
        ns = self.spaces[name] if name != "host" else self.host
        timeout = ANSWER_TIMEOUT if expect else SILENCE_TIMEOUT
        done = ns.run([sys.executable, "-c", _CLIENT, proto, address, str(port), str(timeout),
                       source or "-"], check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def close(self) -> None:
        for server in self.servers:
            server.kill()
            server.wait()
        for ns in self.spaces.values():
            ns.delete()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
