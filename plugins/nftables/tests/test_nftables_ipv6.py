"""IPv6 in the nftables backend: the mirror table ``ip6 locker`` as
``nft -j list ruleset`` shows it (parsed here, not by the backend), and
real IPv6 traffic through it between network namespaces: forwards to an
IPv6 host address, masquerade (NAT66) as the peer sees it or routing
without it, the deny of a routed neighbour, hairpin, isolation."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from ipaddress import IPv4Network, IPv6Address, IPv6Network

import pytest

from locker.link.netlink import NetlinkBackend
from locker.model import Bridge, Forward, Link
from locker.names import bridge_name
from locker.plugins import new_manager
from locker.testing import firewall_suite as suite
from locker.testing.netns import NetNS

from locker_nftables import NftablesBackend

pytestmark = pytest.mark.privileged

NET6 = IPv6Network("fd00:1234:5678:101::/64")
ALPHA = Bridge("alpha", bridge_name("alpha"), IPv4Network("10.1.1.0/24"), network6=NET6)
BETA = Bridge("beta", bridge_name("beta"), IPv4Network("10.1.2.0/24"),
              network6=IPv6Network("fd00:1234:5678:102::/64"))
WEB6, DB6 = NET6[2], NET6[3]
HOST6, NEIGHBOUR6 = "2001:db8:1::1", "2001:db8:1::2"
WEB = Forward("alpha", "web", 8080, WEB6, 80)
WEB_AT_HOST = Forward("alpha", "web", 8443, WEB6, 80, host_ip=IPv6Address(HOST6))


def hooks():
    return new_manager(NftablesBackend()).hook


def table(netns: NetNS, family: str) -> dict:
    """Table FAMILY locker as ``nft -j list ruleset`` has it: chains, rules
    by chain as (comment, expr), maps and sets with their elements."""
    items = json.loads(netns.run(["nft", "-j", "list", "ruleset"]).stdout)["nftables"]
    mine = [i for i in items if any(isinstance(v, dict) and v.get("table") == "locker"
                                    and v.get("family") == family for v in i.values())]
    chains = {i["chain"]["name"]: i["chain"] for i in mine if "chain" in i}
    rules: dict[str, list] = {name: [] for name in chains}
    for item in mine:
        if "rule" in item:
            rules[item["rule"]["chain"]].append((item["rule"].get("comment"),
                                                 item["rule"]["expr"]))
    stores = {(i.get("map") or i.get("set"))["name"]: (i.get("map") or i.get("set"))
              for i in mine if "map" in i or "set" in i}
    return {"chains": chains, "rules": rules, "stores": stores}


def match(left: dict, op: str, right) -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


IIF, OIF = {"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}
SADDR6 = {"payload": {"protocol": "ip6", "field": "saddr"}}
DADDR6 = {"payload": {"protocol": "ip6", "field": "daddr"}}
NET6_JSON = {"prefix": {"addr": str(NET6.network_address), "len": 64}}


# ------------------------------------------------------------------ the rules

def test_the_ip6_table_mirrors_the_ip_table(netns: NetNS) -> None:
    hook = hooks()
    isolated = replace(ALPHA, isolated=True)
    hook.add_nat(bridges=[isolated])
    hook.add_forward(forwards=[WEB, WEB_AT_HOST])
    hook.add_link(links=[Link("alpha", "web", WEB6, "db", DB6)])
    four, six = table(netns, "ip"), table(netns, "ip6")
    assert set(six["chains"]) == set(four["chains"])
    hooked = {n: (c.get("type"), c.get("hook"), c.get("prio"))
              for n, c in six["chains"].items() if "hook" in c}
    assert hooked == {n: (c.get("type"), c.get("hook"), c.get("prio"))
                      for n, c in four["chains"].items() if "hook" in c}
    tag = "locker:alpha:"
    rules = six["rules"]
    assert (tag + "masquerade", [match(SADDR6, "==", NET6_JSON),
                                 match(DADDR6, "!=", NET6_JSON),
                                 {"masquerade": None}]) in rules["LOCKER_POSTROUTING"]
    assert (tag + "hairpin", [match(SADDR6, "==", NET6_JSON), match(DADDR6, "==", NET6_JSON),
                              match({"ct": {"key": "status"}}, "in", "dnat"),
                              {"masquerade": None}]) in rules["LOCKER_POSTROUTING"]
    assert (tag + "deny", [match(OIF, "==", ALPHA.name), match(IIF, "!=", ALPHA.name),
                           match({"ct": {"key": "state"}}, "!", ["established", "related"]),
                           match({"ct": {"key": "status"}}, "!", "dnat"),
                           {"drop": None}]) in rules["LOCKER_ISOLATION"]
    assert rules["LOCKER_INPUT"] == [(tag + "isolate", [
        match(IIF, "==", ALPHA.name), match(DADDR6, "!=", str(NET6[1])),
        match({"ct": {"key": "state"}}, "in", "new"), {"drop": None}])]
    comments = {c for chain in rules.values() for c, _ in chain}
    assert tag + "localhost" not in comments and tag + "guard" not in comments
    assert {tag + "localhost", tag + "guard"} <= {c for chain in four["rules"].values()
                                                  for c, _ in chain}
    assert (tag + "web:link:db", [match(SADDR6, "==", str(WEB6)), match(DADDR6, "==", str(DB6)),
                           {"accept": None}]) in rules["LOCKER_FWD_alpha"]
    assert six["stores"]["alpha_dnat_addr"]["type"] == ["inet_proto", "inet_service"]
    assert six["stores"]["alpha_dnat_addr"]["map"] == "ipv6_addr"
    assert six["stores"]["alpha_fwdip_tcp"]["type"] == [
        "ipv6_addr", "inet_service", "inet_service", "ipv6_addr"]
    assert [e["elem"]["val"]["concat"] for e in six["stores"]["alpha_fwdip_tcp"]["elem"]] == [
        [str(WEB6), 80, 8443, HOST6]]
    assert not any(s.get("elem") for s in four["stores"].values())  # nothing IPv6 there
    found = hook.list_rules(project="alpha")
    assert found == suite.expected(nat={isolated}, forwards=[WEB, WEB_AT_HOST],
                                   links=[Link("alpha", "web", WEB6, "db", DB6)])


def test_without_ipv6_there_is_no_ip6_table(netns: NetNS) -> None:
    hook = hooks()
    plain = replace(ALPHA, network6=None)
    hook.add_nat(bridges=[plain])
    assert table(netns, "ip6")["chains"] == {}
    assert hook.list_rules(project=None) == suite.expected(nat={plain})


def test_routed_ipv6_has_no_masquerade_and_reads_back(netns: NetNS) -> None:
    hook = hooks()
    routed = replace(ALPHA, nat6=False)
    hook.add_nat(bridges=[routed])
    comments = [c for c, _ in table(netns, "ip6")["rules"]["LOCKER_POSTROUTING"]]
    assert comments == ["locker:alpha:hairpin"]
    assert hook.list_rules(project="alpha").nat == {routed}
    hook.remove_nat(bridges=[routed])          # the repair when ipv6_nat changes
    hook.add_nat(bridges=[ALPHA])
    assert hook.list_rules(project="alpha").nat == {ALPHA}


def test_turning_ipv6_off_removes_the_ip6_rules(netns: NetNS) -> None:
    hook = hooks()
    hook.add_nat(bridges=[ALPHA, BETA])
    hook.add_forward(forwards=[WEB])
    hook.remove_forward(forwards=[WEB])
    hook.remove_nat(bridges=[ALPHA])
    hook.add_nat(bridges=[replace(ALPHA, network6=None)])
    six = table(netns, "ip6")
    assert not any(c.startswith("locker:alpha:") for chain in six["rules"].values()
                   for c, _ in chain if c)
    assert any(c == "locker:beta:deny" for c, _ in six["rules"]["LOCKER_ISOLATION"])
    assert hook.list_rules(project=None) == suite.expected(
        nat={replace(ALPHA, network6=None), BETA})
    hook.cleanup(project="alpha")
    hook.cleanup(project="beta")
    assert "LOCKER_FWD_beta" not in table(netns, "ip6")["chains"]
    assert hook.list_rules(project=None) == suite.expected()


def test_a_missing_ipv6_rule_makes_the_value_partial_and_is_added_back(netns: NetNS) -> None:
    hook = hooks()
    hook.add_nat(bridges=[ALPHA])
    listing = json.loads(netns.run(["nft", "-j", "-a", "list", "chain", "ip6", "locker",
                                    "LOCKER_ISOLATION"]).stdout)["nftables"]
    handle = next(i["rule"]["handle"] for i in listing if "rule" in i)
    netns.run(["nft", "delete", "rule", "ip6", "locker", "LOCKER_ISOLATION", "handle",
               str(handle)])
    found = hook.list_rules(project="alpha")
    assert found.nat == set() and found.partial == {ALPHA}
    hook.add_nat(bridges=[ALPHA])
    assert hook.list_rules(project=None) == suite.expected(nat={ALPHA})


# ------------------------------------------------------------------ traffic

# Answers every connection on [::]:PORT with "hello FROM", FROM the peer's address.
_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(f"hello {peer[0]}".encode())
    c.close()
"""
_CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5) as c:
        print(c.recv(64).decode(), end="")
except socket.timeout:
    print("timeout", end="")
except ConnectionRefusedError:
    print("refused", end="")
except OSError as error:
    print(f"error {error.errno}", end="")
"""


def _without_dad(ns: NetNS) -> None:
    """No duplicate address detection on the interfaces made from now on:
    their link-local addresses are usable at once, as the global ones
    (added ``nodad``) are."""
    ns.run(["sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad"])


class Topology6:
    """The test's namespace is the host (2001:db8:1::1 towards a neighbour
    at 2001:db8:1::2 that routes fd00:1234:5678::/48 through it); each
    "container" namespace sits on a project's bridge (made by the netlink
    link backend with its ::1/64) at ::N, routed through ::1."""

    def __init__(self, host: NetNS) -> None:
        self.host = host
        self.namespaces: list[NetNS] = []
        self.servers: list[subprocess.Popen] = []
        host.run(["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"])
        _without_dad(host)
        self.neighbour = self._namespace("p6neigh")
        host.run(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0",
                  "netns", self.neighbour.name])
        host.run(["ip", "-6", "addr", "add", f"{HOST6}/64", "dev", "up0", "nodad"])
        host.run(["ip", "link", "set", "up0", "up"])
        self.neighbour.run(["ip", "-6", "addr", "add", f"{NEIGHBOUR6}/64", "dev", "eth0",
                            "nodad"])
        self.neighbour.run(["ip", "link", "set", "eth0", "up"])
        self.neighbour.run(["ip", "-6", "route", "add", "fd00:1234:5678::/48", "via", HOST6])

    def _namespace(self, prefix: str) -> NetNS:
        ns = NetNS(prefix)
        self.namespaces.append(ns)
        _without_dad(ns)
        return ns

    def container(self, bridge: Bridge, host_part: int = 2) -> NetNS:
        new_manager(NetlinkBackend()).hook.ensure_bridge(bridge=bridge, adopt=False)
        ns = self._namespace("p6ctr")
        veth = f"v{bridge.project[:6]}{host_part}"
        self.host.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                       "netns", ns.name])
        self.host.run(["ip", "link", "set", veth, "master", bridge.name, "up"])
        ns.run(["ip", "-6", "addr", "add", f"{bridge.network6[host_part]}/64", "dev", "eth0",
                "nodad"])
        ns.run(["ip", "link", "set", "eth0", "up"])
        ns.run(["ip", "-6", "route", "add", "default", "via", str(bridge.gateway6)])
        return ns

    def serve(self, ns: NetNS | None, port: int) -> None:
        prefix = ["ip", "netns", "exec", ns.name] if ns is not None else []
        proc = subprocess.Popen([*prefix, sys.executable, "-c", _SERVER, str(port)],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def connect(self, ns: NetNS | None, address: str, port: int) -> str:
        """From ``ns`` (None: the host itself): "hello FROM", or why not."""
        return (ns or self.host).run([sys.executable, "-c", _CLIENT, address, str(port)]).stdout

    def __enter__(self) -> Topology6:
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for ns in self.namespaces:
            ns.delete()


def test_a_routed_neighbour_reaches_only_the_ipv6_forwards(netns: NetNS) -> None:
    with Topology6(netns) as net:
        web = net.container(ALPHA)
        net.serve(web, 80)
        assert net.connect(net.neighbour, str(WEB6), 80) == f"hello {NEIGHBOUR6}"  # before
        hook = hooks()
        hook.add_nat(bridges=[ALPHA])
        assert net.connect(net.neighbour, str(WEB6), 80) == "timeout"            # deny
        hook.add_forward(forwards=[WEB, WEB_AT_HOST])
        assert net.connect(net.neighbour, HOST6, 8080) == f"hello {NEIGHBOUR6}"
        assert net.connect(net.neighbour, HOST6, 8443) == f"hello {NEIGHBOUR6}"
        assert net.connect(net.neighbour, str(WEB6), 80) == "timeout"


def test_outbound_is_masqueraded_by_default_and_routed_when_asked(netns: NetNS) -> None:
    with Topology6(netns) as net:
        web = net.container(ALPHA)
        net.serve(net.neighbour, 9000)
        hook = hooks()
        hook.add_nat(bridges=[ALPHA])
        assert net.connect(web, NEIGHBOUR6, 9000) == f"hello {HOST6}"          # NAT66
        hook.remove_nat(bridges=[ALPHA])
        hook.add_nat(bridges=[replace(ALPHA, nat6=False)])
        assert net.connect(web, NEIGHBOUR6, 9000) == f"hello {WEB6}"           # routed


def test_forwards_from_the_host_itself_and_hairpin_in_ipv6(netns: NetNS) -> None:
    with Topology6(netns) as net:
        web = net.container(ALPHA)
        sibling = net.container(ALPHA, 3)
        net.serve(web, 80)
        hook = hooks()
        hook.add_nat(bridges=[ALPHA])
        hook.add_forward(forwards=[WEB])
        assert net.connect(None, HOST6, 8080).startswith("hello ")
        assert net.connect(sibling, HOST6, 8080) == f"hello {ALPHA.gateway6}"  # hairpin
        assert not net.connect(None, "::1", 8080).startswith("hello")          # no ::1


def test_isolated_ipv6_containers_reach_only_their_gateway(netns: NetNS) -> None:
    with Topology6(netns) as net:
        alpha = net.container(ALPHA)
        beta = net.container(BETA)
        net.serve(None, 9998)
        net.serve(beta, 80)
        hook = hooks()
        hook.add_nat(bridges=[replace(ALPHA, isolated=True), BETA])
        assert net.connect(alpha, str(BETA.network6[2]), 80) == "timeout"     # deny of beta
        assert net.connect(alpha, HOST6, 9998) == "timeout"
        assert net.connect(alpha, str(BETA.gateway6), 9998) == "timeout"
        assert net.connect(alpha, str(ALPHA.gateway6), 9998).startswith("hello")
        assert net.connect(beta, HOST6, 9998).startswith("hello")             # not isolated


def test_ipv6_port_ranges_are_listed_back_as_ranges(netns: NetNS) -> None:
    hook = hooks()
    same = Forward("alpha", "web", 9000, WEB6, 9000, count=5)
    shifted = Forward("alpha", "web", 9100, WEB6, 80, "udp", IPv6Address(HOST6), count=3)
    hook.add_nat(bridges=[ALPHA])
    hook.add_forward(forwards=[same, shifted])
    assert hook.list_rules(project="alpha") == suite.expected(nat={ALPHA},
                                                              forwards=[same, shifted])
    hook.remove_forward(forwards=[same, shifted])
    assert hook.list_rules(project="alpha") == suite.expected(nat={ALPHA})
