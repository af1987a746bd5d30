"""The network policy with real busybox containers and real traffic: what is
open towards a project's containers and what is not (issues 13.3, 13.5,
11.1, 11.5).

Two projects: ``alpha`` (``web`` with forwards 8080 and 127.0.0.1:8082 to
its port 80, and a sibling ``app``) and ``beta`` (``web`` with a forward
8090 to its port 80). Every container serves its own page. The host runs a
service of its own on port 9998 of every address, and one on 127.0.0.1:9999.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from locker.testing.netns import NetNS
from world import FIREWALL_PAIRS, HOST_IP, OUTSIDE_IP, World

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]
WORLDS = FIREWALL_PAIRS

ALPHA = """\
containers:
  web:
    template: {name: busybox}
    ports: ["8080:80", "localhost:8082:80"]
  app:
    template: {name: busybox}
"""
BETA = """\
containers:
  web:
    template: {name: busybox}
    ports: ["8090:80"]
"""
PAGES = {"alpha_web": "alpha web\n", "alpha_app": "alpha app\n", "beta_web": "beta web\n"}
HOST_PAGE = "the host itself\n"

# An HTTP server answering every GET with argv[3]; prints "ready" once it
# listens on argv[1]:argv[2].
_SERVER = """
import http.server, sys
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = sys.argv[3].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer.allow_reuse_address = True
server = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Page)
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


@dataclass
class Projects:
    world: World
    alpha: Path
    beta: Path
    servers: list[subprocess.Popen]

    def ip(self, project: Path, container: str) -> IPv4Interface:
        found = next(c for c in self.world.status(project)["containers"]
                     if c["name"] == container)
        return IPv4Interface(found["configured_address"])

    def gateway(self, project: Path) -> str:
        return str(self.ip(project, "web").network[1])

    def serve_on_host(self, address: str, port: int, text: str) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", self.world.host.name, sys.executable,
                                 "-c", _SERVER, address, str(port), text],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def fetch_on_host(self, url: str, timeout: int = 3) -> str | None:
        """An HTTP GET from the host itself (the world's host namespace)."""
        done = self.world.host.run([sys.executable, "-c", _FETCH, url, str(timeout)],
                                   check=False, timeout=timeout + 10)
        return done.stdout if done.returncode == 0 else None

    def fetch_in(self, ns, url: str, timeout: int = 3) -> str | None:
        """An HTTP GET from a namespace that is no container."""
        done = ns.run([sys.executable, "-c", _FETCH, url, str(timeout)], check=False,
                      timeout=timeout + 10)
        return done.stdout if done.returncode == 0 else None

    def user_table(self) -> tuple[str, str]:
        """(family, table) of the nftables table whose LOCKER_USER the
        backend made (``ip locker`` for the shipped backend; any backend
        that keeps its rules in nftables names its table ``locker*``)."""
        listing = json.loads(self.world.host.run(["nft", "-j", "list", "chains"]).stdout)
        homes = [(c["family"], c["table"]) for item in listing["nftables"]
                 for c in [item.get("chain")] if c and c["name"] == "LOCKER_USER"
                 and c["table"].startswith("locker")]
        assert len(homes) == 1, f"no single LOCKER_USER chain in a locker* table: {homes}"
        return homes[0]

    def user_drop(self, source: str) -> None:
        """The administrator's drop in LOCKER_USER, as the README shows it."""
        if self.world.rules_via_nft:
            self.world.host.run(["nft", "add", "rule", *self.user_table(), "LOCKER_USER", "ip",
                                 "saddr", source, "drop"])
        else:
            self.world.host.run(["iptables-legacy", "-I", "LOCKER_USER", "-s", source,
                                 "-j", "DROP"])

    def user_rules(self) -> list[str]:
        if self.world.rules_via_nft:
            text = self.world.host.run(["nft", "list", "chain", *self.user_table(),
                                        "LOCKER_USER"]).stdout
            return [line.strip() for line in text.splitlines() if "drop" in line]
        return [line for line in self.world.host.run(
            ["iptables-legacy", "-S", "LOCKER_USER"]).stdout.splitlines() if "DROP" in line]

    def user_flush(self) -> None:
        if self.world.rules_via_nft:
            self.world.host.run(["nft", "flush", "chain", *self.user_table(), "LOCKER_USER"])
        else:
            self.world.host.run(["iptables-legacy", "-F", "LOCKER_USER"])


@pytest.fixture(scope="module")
def projects(world: World) -> Iterator[Projects]:
    p = Projects(world, world.project("alpha", ALPHA), world.project("beta", BETA), [])
    try:
        for directory in (p.alpha, p.beta):
            world.locker(directory, "create")
            world.locker(directory, "start")
        for container, page in PAGES.items():
            world.serve_http(container, page)
        p.serve_on_host("0.0.0.0", 9998, HOST_PAGE)
        p.serve_on_host("127.0.0.1", 9999, HOST_PAGE)
        yield p
    finally:
        for proc in p.servers:
            proc.kill()
            proc.wait()
        for directory in (p.alpha, p.beta):
            world.locker(directory, "cleanup", check=False)


@pytest.fixture
def routed_outside(projects: Projects) -> Iterator[None]:
    """The outside routes 10.0.0.0/8 (the pool) through the host, and the
    host's FORWARD policy is accept (the iptables world's is drop)."""
    world = projects.world
    world.outside.run(["ip", "route", "add", "10.0.0.0/8", "via", HOST_IP])
    if world.backend == "iptables":
        world.host.run(["iptables-legacy", "-P", "FORWARD", "ACCEPT"])
    try:
        yield
    finally:
        world.outside.run(["ip", "route", "del", "10.0.0.0/8", "via", HOST_IP], check=False)
        if world.backend == "iptables":
            world.host.run(["iptables-legacy", "-P", "FORWARD", "DROP"])


def test_a_routed_neighbour_reaches_only_the_forwards(projects: Projects,
                                                      routed_outside: None) -> None:
    world = projects.world
    web = projects.ip(projects.alpha, "web").ip
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGES["alpha_web"]
    assert world.fetch_outside(f"http://{web}/") is None
    assert world.fetch_outside(f"http://{projects.ip(projects.alpha, 'app').ip}/") is None
    assert world.fetch_outside(f"http://{projects.ip(projects.beta, 'web').ip}/") is None
    # the containers still reach the outside, and get their replies
    url = world.peer_echo_server(9001)
    assert world.fetch_in("alpha_web", url) == HOST_IP


def test_a_drop_in_locker_user_wins_and_survives_ports(projects: Projects) -> None:
    world = projects.world
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGES["alpha_web"]
    projects.user_drop(OUTSIDE_IP)
    try:
        rules = projects.user_rules()
        assert len(rules) == 1, rules
        assert world.fetch_outside(f"http://{HOST_IP}:8080/") is None
        world.locker(projects.alpha, "ports")
        world.locker(projects.alpha, "start")
        assert projects.user_rules() == rules
        assert world.fetch_outside(f"http://{HOST_IP}:8080/") is None
        assert world.fetch_outside(f"http://{HOST_IP}:8090/") is None
        status = world.status(projects.alpha)
        assert status["in_place"] and status["rules"]["chains_and_jumps"], status["items"]
    finally:
        projects.user_flush()
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGES["alpha_web"]


def test_forwards_work_from_the_host_itself(projects: Projects) -> None:
    page = PAGES["alpha_web"]
    assert projects.fetch_on_host(f"http://{HOST_IP}:8080/") == page
    assert projects.fetch_on_host("http://127.0.0.1:8080/") == page
    # HOST_IP 127.0.0.1 (written as localhost): from the host itself only
    assert projects.fetch_on_host("http://127.0.0.1:8082/") == page
    assert projects.world.fetch_outside(f"http://{HOST_IP}:8082/") is None
    assert projects.fetch_on_host(f"http://{HOST_IP}:8090/") == PAGES["beta_web"]


def test_hairpin_a_container_reaches_forwards_through_the_host_address(
        projects: Projects) -> None:
    world = projects.world
    assert world.fetch_in("alpha_app", f"http://{HOST_IP}:8080/") == PAGES["alpha_web"]
    assert world.fetch_in("beta_web", f"http://{HOST_IP}:8080/") == PAGES["alpha_web"]
    assert world.fetch_in("alpha_web", f"http://{HOST_IP}:8090/") == PAGES["beta_web"]


def test_the_guard_keeps_a_bridge_neighbour_from_the_hosts_loopback(
        projects: Projects) -> None:
    """CVE-2020-8558: the project's bridge has route_localnet on; a
    neighbour on it that routes 127.0.0.1 to the gateway gets nowhere."""
    world = projects.world
    bridge = "locker_alpha"
    assert world.host.run(["cat", f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"]
                          ).stdout.strip() == "1"
    assert world.host.run(["cat", "/proc/sys/net/ipv4/conf/all/route_localnet"]
                          ).stdout.strip() == "0"
    network = projects.ip(projects.alpha, "web").network
    gateway = str(network[1])
    neighbour = NetNS("e2eguard")
    world.host.run(["ip", "link", "add", "guardv", "type", "veth", "peer", "name", "eth0",
                    "netns", neighbour.name])
    try:
        world.host.run(["ip", "link", "set", "guardv", "master", bridge, "up"])
        neighbour.run(["ip", "addr", "add", f"{network[250]}/{network.prefixlen}",
                       "dev", "eth0"])
        neighbour.run(["ip", "link", "set", "eth0", "up"])
        assert projects.fetch_in(neighbour, f"http://{gateway}:9998/") == HOST_PAGE
        neighbour.run(["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"])
        neighbour.run(["ip", "route", "add", "127.0.0.1/32", "via", gateway])
        neighbour.run(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet"])
        assert projects.fetch_in(neighbour, "http://127.0.0.1:9999/") is None
        assert projects.fetch_on_host("http://127.0.0.1:9999/") == HOST_PAGE
    finally:
        world.host.run(["ip", "link", "del", "guardv"], check=False)
        neighbour.delete()


def test_projects_are_apart_and_an_isolated_one_sees_only_its_gateway(
        projects: Projects) -> None:
    world = projects.world
    alpha_web, beta_web = (str(projects.ip(p, "web").ip) for p in (projects.alpha,
                                                                   projects.beta))
    alpha_gateway, beta_gateway = projects.gateway(projects.alpha), projects.gateway(
        projects.beta)
    # by default: not each other's containers, but the host and its addresses
    assert world.fetch_in("alpha_web", f"http://{beta_web}/") is None
    assert world.fetch_in("beta_web", f"http://{alpha_web}/") is None
    for address in (HOST_IP, beta_gateway, alpha_gateway):
        assert world.fetch_in("alpha_web", f"http://{address}:9998/") == HOST_PAGE, address

    (projects.alpha / "locker.yaml").write_text("isolated: true\n" + ALPHA)
    try:
        world.locker(projects.alpha, "start")
        for address in (HOST_IP, beta_gateway):
            assert world.fetch_in("alpha_web", f"http://{address}:9998/") is None, address
        assert world.fetch_in("alpha_web", f"http://{alpha_gateway}:9998/") == HOST_PAGE
        assert world.fetch_in("alpha_web", f"http://{beta_web}/") is None
        # beta's forward through a host address still works from alpha
        assert world.fetch_in("alpha_web", f"http://{HOST_IP}:8090/") == PAGES["beta_web"]
        assert world.fetch_in("beta_web", f"http://{HOST_IP}:9998/") == HOST_PAGE
        assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGES["alpha_web"]
        status = world.status(projects.alpha)
        assert status["in_place"], status["items"]
    finally:
        (projects.alpha / "locker.yaml").write_text(ALPHA)
        world.locker(projects.alpha, "start")
    assert world.fetch_in("alpha_web", f"http://{HOST_IP}:9998/") == HOST_PAGE

    # the host file's default applies where the project file says nothing
    default = world.host_config.read_text()
    world.host_config.write_text("isolated: true\n")
    try:
        world.locker(projects.alpha, "start")
        assert world.fetch_in("alpha_web", f"http://{HOST_IP}:9998/") is None
        assert world.fetch_in("alpha_web", f"http://{alpha_gateway}:9998/") == HOST_PAGE
    finally:
        world.host_config.write_text(default)
        world.locker(projects.alpha, "start")
    assert world.fetch_in("alpha_web", f"http://{HOST_IP}:9998/") == HOST_PAGE
