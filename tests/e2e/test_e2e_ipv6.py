"""IPv6 with real busybox containers and real IPv6 traffic, inside the
test's namespaces only (issue 11.3).

The host file leaves ``ipv6`` off; project ``alpha`` turns it on
(``ipv6: true``): ``web`` forwards 8080 (both families) and
``[2001:db8:1::1]:8443`` (IPv6 only) to its port 80, ``app`` links to
``web``. The world's uplink gets IPv6 too: the host ``2001:db8:1::1``, the
outside ``2001:db8:1::2``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Interface, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from locker import ipv6
from world import FIREWALL_PAIRS, HOST_IP, World, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]
WORLDS = FIREWALL_PAIRS

HOST6, OUTSIDE6 = "2001:db8:1::1", "2001:db8:1::2"
ALPHA = """\
ipv6: true
containers:
  web:
    template: {name: busybox}
    ports: ["8080:80", "[2001:db8:1::1]:8443:80"]
  app:
    template: {name: busybox}
    links: [web]
"""
PLAIN = """\
containers:
  web:
    template: {name: busybox}
    ports: ["8080:80", "[2001:db8:1::1]:8443:80"]
"""
PAGE = "alpha web over both families\n"

# Answers every GET with the client's address; prints "ready" once it
# listens on [::]:PORT.
_ECHO6 = """
import http.server, socket, sys
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.HTTPServer):
    address_family = socket.AF_INET6
server = Server(("::", int(sys.argv[1])), Echo)
print("ready", flush=True)
server.serve_forever()
"""
_FETCH = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as answer:
        sys.stdout.write(answer.read().decode())
except OSError:
    sys.exit(1)
"""


class Alpha:
    def __init__(self, world: World, directory: Path) -> None:
        self.world = world
        self.directory = directory
        self.servers: list[subprocess.Popen] = []

    def address4(self, container: str) -> IPv4Interface:
        found = next(c for c in self.world.status(self.directory)["containers"]
                     if c["name"] == container)
        return IPv4Interface(found["configured_address"])

    @property
    def prefix(self) -> IPv6Network:
        return ipv6.parse_prefix((self.world.state_dir / "host-id").read_text())

    def network6(self) -> IPv6Network:
        return ipv6.project_network(self.prefix, self.address4("web").network)

    def address6(self, container: str) -> IPv6Address:
        return ipv6.container_address(self.network6(), self.address4(container).ip)

    def fetch_outside(self, url: str, timeout: int = 3) -> str | None:
        done = self.world.outside.run([sys.executable, "-c", _FETCH, url, str(timeout)],
                                      check=False, timeout=timeout + 10)
        return done.stdout if done.returncode == 0 else None

    def echo_outside(self, port: int) -> str:
        proc = subprocess.Popen(["ip", "netns", "exec", self.world.outside.name,
                                 sys.executable, "-c", _ECHO6, str(port)],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return f"http://[{OUTSIDE6}]:{port}/"


def _wire_ipv6(world: World) -> None:
    for ns, address in ((world.host, HOST6), (world.outside, OUTSIDE6)):
        ns.run(["ip", "-6", "addr", "add", f"{address}/64", "dev", "uplink", "nodad"])
    world.host.run(["ip", "-6", "route", "add", "default", "via", OUTSIDE6])


@pytest.fixture(scope="module")
def alpha(world: World) -> Iterator[Alpha]:
    _wire_ipv6(world)
    a = Alpha(world, world.project("alpha", ALPHA))
    try:
        world.locker(a.directory, "create")
        world.locker(a.directory, "start")
        world.serve_http("alpha_web", PAGE)
        yield a
    finally:
        for proc in a.servers:
            proc.kill()
            proc.wait()
        world.locker(a.directory, "cleanup", check=False)


def test_the_project_gets_a_64_from_the_hosts_prefix(alpha: Alpha) -> None:
    world = alpha.world
    prefix = alpha.prefix
    assert prefix.prefixlen == 48 and prefix.subnet_of(IPv6Network("fd00::/8"))
    network6 = alpha.network6()
    bridge = world.bridges()[0]
    listing = json.loads(world.host.run(["ip", "-j", "-6", "addr", "show", "dev", bridge,
                                         "scope", "global"]).stdout)
    assert [f"{a['local']}/{a['prefixlen']}" for link in listing
            for a in link["addr_info"] if "local" in a] == [f"{network6[1]}/64"]
    config = (world.lxcpath / "alpha_web" / "config").read_text()
    web6 = alpha.address6("web")
    assert f"lxc.net.0.ipv6.address = {web6}/64" in config
    assert f"lxc.net.0.ipv6.gateway = {network6[1]}" in config
    inside = world.attach("alpha_web", "/bin/busybox", "ip", "-6", "addr", "show", "eth0")
    assert f"{web6}/64" in inside.stdout
    hosts = (world.rootfs("alpha_app") / "etc" / "hosts").read_text()
    assert f"{web6}\tweb\t# locker" in hosts.splitlines()
    assert f"{alpha.address4('web').ip}\tweb\t# locker" in hosts.splitlines()


def test_forwards_answer_on_ipv6_host_addresses(alpha: Alpha) -> None:
    assert wait_for(lambda: alpha.fetch_outside(f"http://[{HOST6}]:8080/") == PAGE,
                    "the IPv6 forward of 8080")
    assert alpha.fetch_outside(f"http://[{HOST6}]:8443/") == PAGE
    assert alpha.fetch_outside(f"http://{HOST_IP}:8080/") == PAGE      # and IPv4 still
    assert alpha.fetch_outside(f"http://{HOST_IP}:8443/") is None      # IPv6 only


def test_containers_reach_the_outside_over_ipv6_masqueraded(alpha: Alpha) -> None:
    url = alpha.echo_outside(9006)
    assert wait_for(lambda: alpha.world.fetch_in("alpha_app", url), "NAT66") == HOST6


def test_a_link_answers_over_ipv6_by_name(alpha: Alpha) -> None:
    web6 = alpha.address6("web")
    # the first contact between two containers on the bridge waits for
    # neighbour discovery, which can outlast one fetch's timeout
    assert wait_for(lambda: alpha.world.fetch_in("alpha_app", f"http://[{web6}]/") == PAGE,
                    f"app reaching web at [{web6}]")
    status = alpha.world.status(alpha.directory)
    assert status["in_place"], status["items"]


def test_a_routed_neighbour_does_not_reach_the_containers_over_ipv6(alpha: Alpha) -> None:
    world = alpha.world
    world.outside.run(["ip", "-6", "route", "add", str(alpha.network6()), "via", HOST6])
    try:
        assert alpha.fetch_outside(f"http://[{alpha.address6('web')}]/") is None
        assert alpha.fetch_outside(f"http://[{HOST6}]:8080/") == PAGE
    finally:
        world.outside.run(["ip", "-6", "route", "del", str(alpha.network6())], check=False)


def test_an_ipv6_host_ip_without_ipv6_is_refused_naming_its_line(world: World) -> None:
    directory = world.project("plain", PLAIN)
    done = world.locker(directory, "validate", check=False)
    assert done.returncode == 2, done
    assert 'locker.yaml:4: containers.web.ports[1]: "[2001:db8:1::1]:8443:80": an IPv6 ' \
           "HOST_IP, but the project has no IPv6" in done.stderr
