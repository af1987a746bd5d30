"""IPv6 in the iptables backend: Locker's rules in the ip6tables (legacy)
filter and nat tables, read back from ``ip6tables-legacy-save`` and tried
with IPv6 traffic between namespaces."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest

from helpers import COUNTERS, save
from locker.model import Bridge, Forward, Link
from locker.plugins import new_manager

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(shutil.which("ip6tables-legacy") is None,
                                 reason="needs ip6tables-legacy (package iptables)")]

NET4 = IPv4Network("10.1.1.0/24")
NET6 = IPv6Network("fd12:3456:789a:1::/64")
GATEWAY6, CONTAINER6, SIBLING6 = NET6[1], NET6[2], NET6[3]
HOST6, NEIGHBOUR6 = IPv6Address("2001:db8:1::1"), IPv6Address("2001:db8:1::2")
BRIDGE = Bridge("alpha", "locker_alpha", NET4, network6=NET6)
ROUTED = Bridge("alpha", "locker_alpha", NET4, network6=NET6, nat6=False)
ISOLATED = Bridge("alpha", "locker_alpha", NET4, isolated=True, network6=NET6)
WEB6 = Forward("alpha", "web", 8080, CONTAINER6, 80)
WEB6_AT = Forward("alpha", "web", 8081, CONTAINER6, 80, "tcp", HOST6)
WEB4 = Forward("alpha", "web", 8080, IPv4Address("10.1.1.2"), 80)
RANGE6 = Forward("alpha", "web", 9000, CONTAINER6, 7000, "udp", None, 3)
LINK6 = Link("alpha", "web", CONTAINER6, "db", SIBLING6)


@pytest.fixture
def hook(netns):
    from locker_iptables import IptablesBackend
    return new_manager(IptablesBackend(lock_timeout=10)).hook


def save6(netns) -> list[tuple[str, str]]:
    """(table, line) of ``ip6tables-legacy-save``, without comments and
    counters."""
    out = netns.run(["ip6tables-legacy-save"]).stdout
    table, lines = "", []
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("*"):
            table = line[1:]
        lines.append((table, COUNTERS.sub("", line)))
    return lines


def lockers6(netns) -> set[str]:
    """Locker's rules and chains in the ip6tables store, as ``TABLE LINE``."""
    return {f"{t} {line.rstrip()}".replace('"', "") for t, line in save6(netns)
            if line.startswith((":LOCKER_", "-A LOCKER_")) or "--comment LOCKER " in line + " "}


def tables6() -> set[str]:
    with open("/proc/thread-self/net/ip6_tables_names") as names:
        return set(names.read().split())


# --------------------------------------------------------- the rules


JUMPS6 = {
    "nat -A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment LOCKER "
    "-j LOCKER_PREROUTING",
    "nat -A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -m comment --comment LOCKER "
    "-j LOCKER_PREROUTING",
    "nat -A POSTROUTING -m comment --comment LOCKER -j LOCKER_POSTROUTING",
    "filter -A FORWARD -m comment --comment LOCKER -j LOCKER_FORWARD",
    "filter -A INPUT -m comment --comment LOCKER -j LOCKER_INPUT",
    "filter -A LOCKER_FORWARD -m comment --comment LOCKER -j LOCKER_USER",
    "filter -A LOCKER_FORWARD -m comment --comment LOCKER -j LOCKER_ISOLATION",
}
CHAINS6 = {f"{t} :{c} - " for t, c in (
    ("nat", "LOCKER_PREROUTING"), ("nat", "LOCKER_POSTROUTING"), ("nat", "LOCKER_PRE_alpha"),
    ("filter", "LOCKER_FORWARD"), ("filter", "LOCKER_USER"), ("filter", "LOCKER_ISOLATION"),
    ("filter", "LOCKER_INPUT"), ("filter", "LOCKER_FWD_alpha"))}
CHAINS6 = {line.rstrip() for line in CHAINS6}
DISPATCH6 = {
    "nat -A LOCKER_PREROUTING -m comment --comment locker:alpha:dispatch -j LOCKER_PRE_alpha",
    "filter -A LOCKER_FORWARD -m comment --comment locker:alpha:dispatch -j LOCKER_FWD_alpha",
}
NAT_RULES6 = {
    "nat -A LOCKER_POSTROUTING -s fd12:3456:789a:1::/64 -d fd12:3456:789a:1::/64 -m conntrack "
    "--ctstate DNAT -m comment --comment locker:alpha:hairpin -j MASQUERADE",
    "filter -A LOCKER_ISOLATION ! -i locker_alpha -o locker_alpha -m conntrack ! --ctstate "
    "RELATED,ESTABLISHED,DNAT -m comment --comment locker:alpha:deny -j DROP",
    "filter -A LOCKER_FWD_alpha -i locker_alpha ! -o locker_alpha -m comment --comment "
    "locker:alpha:outbound -j ACCEPT",
    "filter -A LOCKER_FWD_alpha -o locker_alpha -m conntrack --ctstate RELATED,ESTABLISHED "
    "-m comment --comment locker:alpha:replies -j ACCEPT",
}
MASQUERADE6 = ("nat -A LOCKER_POSTROUTING -s fd12:3456:789a:1::/64 ! -d fd12:3456:789a:1::/64 "
               "-m comment --comment locker:alpha:masquerade -j MASQUERADE")
ISOLATE6 = ("filter -A LOCKER_INPUT ! -d fd12:3456:789a:1::1/128 -i locker_alpha "
            "-m conntrack --ctstate NEW -m comment --comment locker:alpha:isolate -j DROP")
FORWARD_RULES6 = {
    "nat -A LOCKER_PRE_alpha -p tcp -m tcp --dport 8080 -m comment --comment "
    "locker:alpha:web:dnat -j DNAT --to-destination [fd12:3456:789a:1::2]:80",
    "filter -A LOCKER_FWD_alpha -d fd12:3456:789a:1::2/128 -p tcp -m tcp --dport 80 -m conntrack "
    "--ctstate DNAT --ctorigdstport 8080 -m comment --comment locker:alpha:web:forward -j ACCEPT",
    "nat -A LOCKER_PRE_alpha -d 2001:db8:1::1/128 -p tcp -m tcp --dport 8081 -m comment "
    "--comment locker:alpha:web:dnat -j DNAT --to-destination [fd12:3456:789a:1::2]:80",
    "filter -A LOCKER_FWD_alpha -d fd12:3456:789a:1::2/128 -p tcp -m tcp --dport 80 -m conntrack "
    "--ctstate DNAT --ctorigdst 2001:db8:1::1 --ctorigdstport 8081 -m comment --comment "
    "locker:alpha:web:forward -j ACCEPT",
}
RANGE_RULES6 = {
    "nat -A LOCKER_PRE_alpha -p udp -m udp --dport 9000:9002 -m comment --comment "
    "locker:alpha:web:dnat -j DNAT --to-destination [fd12:3456:789a:1::2]:7000-7002/9000",
    "filter -A LOCKER_FWD_alpha -d fd12:3456:789a:1::2/128 -p udp -m udp --dport 7000:7002 "
    "-m conntrack --ctstate DNAT --ctorigdstport 9000:9002 -m comment --comment "
    "locker:alpha:web:forward -j ACCEPT",
}
LINK_RULES6 = {
    "filter -A LOCKER_FWD_alpha -s fd12:3456:789a:1::2/128 -d fd12:3456:789a:1::3/128 -m comment "
    "--comment locker:alpha:web:link:db -j ACCEPT",
    "filter -A LOCKER_FWD_alpha -s fd12:3456:789a:1::3/128 -d fd12:3456:789a:1::2/128 -m comment "
    "--comment locker:alpha:web:link-back:db -j ACCEPT",
}


def test_ipv6_values_are_written_to_ip6tables_and_read_back(hook, netns) -> None:
    hook.add_nat(bridges=[ISOLATED])
    hook.add_forward(forwards=[WEB4, WEB6, WEB6_AT, RANGE6])
    hook.add_link(links=[LINK6])
    assert lockers6(netns) == (CHAINS6 | JUMPS6 | DISPATCH6 | NAT_RULES6 | {MASQUERADE6, ISOLATE6}
                               | FORWARD_RULES6 | RANGE_RULES6 | LINK_RULES6)
    assert tables6() == {"filter", "nat"}
    # no localhost masquerade and no guard in IPv6; IPv4 keeps its own
    assert not any("localhost" in line or "guard" in line for line in lockers6(netns))
    assert any("locker:alpha:guard" in line for _, line in save(netns))
    listed = hook.list_rules(project="alpha")
    assert listed.nat == {ISOLATED}
    assert listed.forwards == {WEB4, WEB6, WEB6_AT, RANGE6}
    assert listed.links == {LINK6}
    assert listed.jumps and not listed.partial and not listed.unrecognised
    assert not listed.entry_missing
    before = lockers6(netns)
    hook.add_nat(bridges=[ISOLATED])          # again: nothing changes
    hook.add_forward(forwards=[WEB4, WEB6, WEB6_AT, RANGE6])
    assert lockers6(netns) == before


def test_a_routed_network_has_no_masquerade(hook, netns) -> None:
    hook.add_nat(bridges=[ROUTED])
    assert lockers6(netns) == CHAINS6 | JUMPS6 | DISPATCH6 | NAT_RULES6
    assert hook.list_rules(project="alpha").nat == {ROUTED}
    hook.add_nat(bridges=[BRIDGE])            # the host file changed: NAT66 again
    assert MASQUERADE6 in lockers6(netns)
    assert hook.list_rules(project="alpha").nat == {BRIDGE}


def test_an_ipv4_only_project_leaves_ip6tables_alone(hook, netns) -> None:
    ipv4 = Bridge("alpha", "locker_alpha", NET4)
    hook.add_nat(bridges=[ipv4])
    hook.add_forward(forwards=[WEB4])
    hook.list_rules(project=None)
    hook.cleanup(project="alpha")
    assert tables6() == set()
    # a project with IPv6 beside it: the IPv4-only one gets no ip6tables chains
    hook.add_nat(bridges=[ipv4])
    hook.add_nat(bridges=[Bridge("beta", "locker_beta", IPv4Network("10.1.2.0/24"),
                                 network6=IPv6Network("fd12:3456:789a:2::/64"))])
    hook.add_forward(forwards=[WEB4])
    chains = {line for line in lockers6(netns) if line.startswith(("nat :", "filter :"))}
    assert not any(line.endswith("_alpha -") for line in chains), chains
    assert any(line.endswith("_beta -") for line in chains), chains
    assert not hook.list_rules(project=None).entry_missing


def test_removing_ipv6_values_and_cleanup(hook, netns) -> None:
    hook.add_nat(bridges=[BRIDGE])
    hook.add_forward(forwards=[WEB4, WEB6, WEB6_AT])
    hook.add_link(links=[LINK6])
    hook.remove_forward(forwards=[WEB6])
    hook.remove_link(links=[LINK6])
    listed = hook.list_rules(project="alpha")
    assert listed.forwards == {WEB4, WEB6_AT} and not listed.links and not listed.partial
    hook.remove_nat(bridges=[BRIDGE])
    assert hook.list_rules(project="alpha").nat == frozenset()
    hook.cleanup(project="alpha")
    assert lockers6(netns) == CHAINS6 - {"nat :LOCKER_PRE_alpha -", "filter :LOCKER_FWD_alpha -"} \
        | JUMPS6


def test_an_altered_ipv6_rule_is_unrecognised_and_removed(hook, netns) -> None:
    hook.add_nat(bridges=[BRIDGE])
    netns.run(["ip6tables-legacy", "-w", "-t", "nat", "-A", "LOCKER_POSTROUTING", "-s",
               "fd12:3456:789a:1::/64", "-j", "MASQUERADE", "-m", "comment", "--comment",
               "locker:alpha:masquerade"])
    listed = hook.list_rules(project="alpha")
    [odd] = listed.unrecognised
    assert odd.location == "ip6tables-legacy nat LOCKER_POSTROUTING"
    hook.remove_unrecognised(project="alpha")
    assert hook.list_rules(project="alpha").unrecognised == ()
    assert hook.list_rules(project="alpha").nat == {BRIDGE}


# ------------------------------------------------------------- traffic

ECHO6 = """
import http.server, socket, sys
class Server(http.server.HTTPServer):
    address_family = socket.AF_INET6
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = Server((sys.argv[1], int(sys.argv[2])), Echo)
print("ready", flush=True)
server.serve_forever()
"""
FETCH = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as answer:
        print(answer.read().decode())
except OSError:
    print("unreachable")
"""


class Wire6:
    """The test namespace as the host, with the bridge ``locker_alpha``
    (fd12:3456:789a:1::1/64), a "container" namespace on it (::2, serving on
    port 80), its sibling (::3) and an uplink neighbour (2001:db8:1::2, the
    host 2001:db8:1::1) on an interface named ``nocker_alpha``: each of its
    characters has the lowest bit of ``locker_alpha``'s. The neighbour
    routes the project's /64 through the host when ``routes``."""

    def __init__(self, host, factory) -> None:
        self.host, self.servers = host, []
        self.pgids = tempfile.mkstemp(prefix="locker-wire-")[1]
        self.container, self.sibling, self.neighbour = factory("lkc"), factory("lks"), factory("lkn")
        run = host.run
        # No duplicate address detection on the interfaces made here: their
        # link-local addresses (neighbour discovery's) work at once.
        for ns in (host, self.container, self.sibling, self.neighbour):
            ns.run(["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])
        run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        # No multicast snooping: the containers' first MLD reports go out
        # before their ports join the bridge, which would then keep the
        # host's neighbour solicitations from them for a while.
        run(["ip", "link", "add", "locker_alpha", "type", "bridge", "mcast_snooping", "0"])
        run(["ip", "addr", "add", f"{GATEWAY6}/64", "dev", "locker_alpha", "nodad"])
        run(["ip", "link", "set", "locker_alpha", "up"])
        for ns, here, there, address, gateway in (
                (self.container, "vc", "vch", CONTAINER6, GATEWAY6),
                (self.sibling, "vs", "vsh", SIBLING6, GATEWAY6),
                (self.neighbour, "vn", "nocker_alpha", NEIGHBOUR6, None)):
            run(["ip", "link", "add", there, "type", "veth", "peer", "name", here,
                 "netns", ns.name])
            if gateway is not None:
                run(["ip", "link", "set", there, "master", "locker_alpha"])
            run(["ip", "link", "set", there, "up"])
            ns.run(["ip", "addr", "add", f"{address}/64", "dev", here, "nodad"])
            ns.run(["ip", "link", "set", here, "up"])
            if gateway is not None:
                ns.run(["ip", "-6", "route", "add", "default", "via", str(gateway)])
        run(["ip", "addr", "add", f"{HOST6}/64", "dev", "nocker_alpha", "nodad"])
        self.serve(self.container, "::", 80)

    def route_through_host(self) -> None:
        self.neighbour.run(["ip", "-6", "route", "add", str(NET6), "via", str(HOST6)])

    def serve(self, ns, address: str, port: int) -> None:
        # A session of its own: `ip netns exec` runs the server as its child,
        # which killing `ip` alone would leave running.
        server = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", ECHO6,
                                   address, str(port)], stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
        self.servers.append(server)
        with open(self.pgids, "a") as pgids:  # also from the test's own process
            pgids.write(f"{server.pid}\n")
        assert server.stdout.readline().strip() == "ready"

    def fetch(self, ns, address: IPv6Address | str, port: int) -> str:
        """The client address the server saw, or "unreachable"."""
        return ns.run([sys.executable, "-c", FETCH, f"http://[{address}]:{port}/"]).stdout.strip()

    def close(self) -> None:
        """Stop every server, also those the test's own process (a fork,
        see ``locker.testing.pytest_plugin``) started."""
        with open(self.pgids) as pgids:
            for pgid in {int(line) for line in pgids}:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os.unlink(self.pgids)
        for server in self.servers:
            server.wait()


@pytest.fixture
def wire(netns, netns_factory):
    made = Wire6(netns, netns_factory)
    try:
        yield made
    finally:
        made.close()


def test_a_forward_and_the_masquerade_carry_ipv6_traffic(hook, netns, wire) -> None:
    hook.add_nat(bridges=[BRIDGE])
    hook.add_forward(forwards=[WEB6, WEB6_AT,
                               Forward("alpha", "web", 9100, CONTAINER6, 7100, "tcp", None, 3)])
    wire.serve(wire.neighbour, "::", 9000)
    wire.serve(wire.container, "::", 7101)
    # a range's middle port goes to the container's middle port (shifted map)
    assert wire.fetch(wire.neighbour, HOST6, 9101) == str(NEIGHBOUR6)
    # the neighbour reaches the container through the host's address: DNAT
    assert wire.fetch(wire.neighbour, HOST6, 8080) == str(NEIGHBOUR6)
    assert wire.fetch(wire.neighbour, HOST6, 8081) == str(NEIGHBOUR6)
    # the container reaches the neighbour as the host (NAT66)
    assert wire.fetch(wire.container, NEIGHBOUR6, 9000) == str(HOST6)
    # from the host itself (nat OUTPUT) and from the sibling (hairpin)
    assert wire.fetch(netns, HOST6, 8080) == str(HOST6)
    assert wire.fetch(wire.sibling, HOST6, 8080) == str(GATEWAY6)


def test_a_routed_network_reaches_out_with_its_own_addresses(hook, netns, wire) -> None:
    hook.add_nat(bridges=[ROUTED])
    wire.route_through_host()
    wire.serve(wire.neighbour, "::", 9000)
    assert wire.fetch(wire.container, NEIGHBOUR6, 9000) == str(CONTAINER6)


def test_the_deny_rule_holds_for_an_interface_of_the_same_low_bits(hook, netns, wire) -> None:
    """python-iptables' Rule6 stores interface masks of 0x01, under which
    ``! -i locker_alpha`` would not match ``nocker_alpha``: the neighbour
    on it would reach the container directly through the deny rule."""
    wire.route_through_host()
    assert wire.fetch(wire.neighbour, CONTAINER6, 80) == str(NEIGHBOUR6)   # FORWARD accepts
    hook.add_nat(bridges=[BRIDGE])
    hook.add_forward(forwards=[WEB6])
    assert wire.fetch(wire.neighbour, CONTAINER6, 80) == "unreachable"
    assert wire.fetch(wire.neighbour, HOST6, 8080) == str(NEIGHBOUR6)


def test_an_isolated_container_reaches_only_its_gateway_and_still_neighbours(
        hook, netns, wire) -> None:
    """The isolate rule drops conntrack state NEW only: neighbour discovery,
    which conntrack does not track, still reaches the host (with "not a
    reply" the container could not even find its gateway)."""
    wire.serve(netns, "::", 9001)
    hook.add_nat(bridges=[ISOLATED])
    wire.container.run(["ip", "-6", "neigh", "flush", "dev", "vc"])
    assert wire.fetch(wire.container, GATEWAY6, 9001) == str(CONTAINER6)
    assert wire.fetch(wire.container, HOST6, 9001) == "unreachable"
    hook.add_nat(bridges=[BRIDGE])
    hook.remove_nat(bridges=[ISOLATED])
    hook.add_nat(bridges=[BRIDGE])
    assert wire.fetch(wire.container, HOST6, 9001) == str(CONTAINER6)

