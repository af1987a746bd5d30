"""The network policy of the nftables backend (default deny towards
containers, LOCKER_USER, forwards from the host itself, hairpin, the
127.0.0.0/8 guard, isolation): the rules as ``nft -j list ruleset`` shows
them, parsed here rather than by the backend, and real traffic through
them between network namespaces."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

import pytest

from locker.link.netlink import NetlinkBackend
from locker.model import Bridge, Forward
from locker.names import bridge_name
from locker.plugins import new_manager
from locker.testing import firewall_suite as suite
from locker.testing.netns import NetNS

from locker_nftables import NftablesBackend

pytestmark = pytest.mark.privileged

ALPHA = Bridge("alpha", bridge_name("alpha"), IPv4Network("10.1.1.0/24"))
BETA = Bridge("beta", bridge_name("beta"), IPv4Network("10.1.2.0/24"))
HOST = "192.0.2.1"
NEIGHBOUR = "192.0.2.2"

#: Project alpha as the backend wrote it before the network policy (the
#: per-project layout without deny, hairpin, localhost, guard and without
#: INPUT, OUTPUT, LOCKER_USER, LOCKER_ISOLATION, LOCKER_INPUT).
PRE_POLICY = """
table ip locker {
    map alpha_dnatip_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr; }
    map alpha_dnatip_port { type ipv4_addr . inet_proto . inet_service : inet_service; }
    map alpha_dnat_addr {
        type inet_proto . inet_service : ipv4_addr
        elements = { tcp . 8080 comment "locker:alpha:web:dnat" : 10.1.1.2 }
    }
    map alpha_dnat_port {
        type inet_proto . inet_service : inet_service
        elements = { tcp . 8080 comment "locker:alpha:web:dnat" : 80 }
    }
    set alpha_fwd_tcp {
        type ipv4_addr . inet_service . inet_service
        elements = { 10.1.1.2 . 80 . 8080 comment "locker:alpha:web:forward" }
    }
    set alpha_fwdip_tcp { type ipv4_addr . inet_service . inet_service . ipv4_addr; }
    set alpha_fwd_udp { type ipv4_addr . inet_service . inet_service; }
    set alpha_fwdip_udp { type ipv4_addr . inet_service . inet_service . ipv4_addr; }
    chain LOCKER_PREROUTING { jump LOCKER_PRE_alpha comment "locker:alpha:dispatch"; }
    chain LOCKER_FORWARD { jump LOCKER_FWD_alpha comment "locker:alpha:dispatch"; }
    chain LOCKER_POSTROUTING {
        ip saddr 10.1.1.0/24 ip daddr != 10.1.1.0/24 masquerade comment "locker:alpha:masquerade"
    }
    chain PREROUTING {
        type nat hook prerouting priority dstnat; policy accept;
        fib daddr type local jump LOCKER_PREROUTING comment "LOCKER"
    }
    chain FORWARD {
        type filter hook forward priority filter; policy accept;
        jump LOCKER_FORWARD comment "LOCKER"
    }
    chain POSTROUTING {
        type nat hook postrouting priority srcnat; policy accept;
        jump LOCKER_POSTROUTING comment "LOCKER"
    }
    chain LOCKER_PRE_alpha {
        dnat to ip daddr . meta l4proto . th dport map @alpha_dnatip_addr:ip daddr . meta l4proto . th dport map @alpha_dnatip_port comment "locker:alpha:dispatch"
        dnat to meta l4proto . th dport map @alpha_dnat_addr:meta l4proto . th dport map @alpha_dnat_port comment "locker:alpha:dispatch"
    }
    chain LOCKER_FWD_alpha {
        ct status dnat ip daddr . tcp dport . ct original proto-dst @alpha_fwd_tcp accept comment "locker:alpha:dispatch"
        ct status dnat ip daddr . tcp dport . ct original proto-dst . ct original ip daddr @alpha_fwdip_tcp accept comment "locker:alpha:dispatch"
        ct status dnat ip daddr . udp dport . ct original proto-dst @alpha_fwd_udp accept comment "locker:alpha:dispatch"
        ct status dnat ip daddr . udp dport . ct original proto-dst . ct original ip daddr @alpha_fwdip_udp accept comment "locker:alpha:dispatch"
        iifname "locker_alpha" oifname != "locker_alpha" accept comment "locker:alpha:outbound"
        oifname "locker_alpha" ct state established,related accept comment "locker:alpha:replies"
    }
}
"""
WEB = Forward("alpha", "web", 8080, IPv4Address("10.1.1.2"), 80)


def hooks():
    return new_manager(NftablesBackend()).hook


# ------------------------------------------------------- the independent reader

def ruleset(netns: NetNS) -> dict:
    """Table ip locker as ``nft -j list ruleset`` has it: {"chains": {name:
    chain object}, "rules": {chain: [(comment, expr), ...]}}."""
    items = json.loads(netns.run(["nft", "-j", "list", "ruleset"]).stdout)["nftables"]
    mine = [i for i in items if any(isinstance(v, dict) and v.get("table") == "locker"
                                    and v.get("family") == "ip" for v in i.values())]
    chains = {i["chain"]["name"]: i["chain"] for i in mine if "chain" in i}
    rules: dict[str, list] = {name: [] for name in chains}
    for item in mine:
        if "rule" in item:
            rules[item["rule"]["chain"]].append((item["rule"].get("comment"),
                                                 item["rule"]["expr"]))
    return {"chains": chains, "rules": rules}


def match(left: dict, op: str, right) -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


IIF, OIF = {"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}
SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
NEW = match({"ct": {"key": "state"}}, "!", ["established", "related"])
LOOPBACK = {"prefix": {"addr": "127.0.0.0", "len": 8}}


def net(network: IPv4Network) -> dict:
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def expected_rules(bridge: Bridge) -> dict[str, list]:
    """Every policy rule of ``bridge``, by chain, as nft lists it."""
    name, project = bridge.name, bridge.project
    tag = f"locker:{project}:"
    found = {
        "LOCKER_ISOLATION": [(tag + "deny", [
            match(OIF, "==", name), match(IIF, "!=", name), NEW,
            match({"ct": {"key": "status"}}, "!", "dnat"), {"drop": None}])],
        "LOCKER_INPUT": [(tag + "guard", [
            match(IIF, "==", name), match(DADDR, "==", LOOPBACK), NEW, {"drop": None}])],
        "LOCKER_POSTROUTING": [
            (tag + "masquerade", [match(SADDR, "==", net(bridge.network)),
                                  match(DADDR, "!=", net(bridge.network)),
                                  {"masquerade": None}]),
            (tag + "hairpin", [match(SADDR, "==", net(bridge.network)),
                               match(DADDR, "==", net(bridge.network)),
                               match({"ct": {"key": "status"}}, "in", "dnat"),
                               {"masquerade": None}]),
            (tag + "localhost", [match(SADDR, "==", LOOPBACK), match(OIF, "==", name),
                                 {"masquerade": None}])],
    }
    if bridge.isolated:
        found["LOCKER_INPUT"].append((tag + "isolate", [
            match(IIF, "==", name), match(DADDR, "!=", str(bridge.gateway)), NEW,
            {"drop": None}]))
    return found


# ------------------------------------------------------------------ the rules

def test_policy_rules_and_entry_chains_as_nft_lists_them(netns: NetNS) -> None:
    hook = hooks()
    isolated = replace(ALPHA, isolated=True)
    hook.add_nat(bridges=[isolated, BETA])
    table = ruleset(netns)
    for bridge in (isolated, BETA):
        for chain, wanted in expected_rules(bridge).items():
            for rule in wanted:
                assert rule in table["rules"][chain], (chain, rule, table["rules"][chain])
    assert not any(c == "locker:beta:isolate" for c, _ in table["rules"]["LOCKER_INPUT"])
    hooked = {name: (c.get("type"), c.get("hook"), c.get("prio"))
              for name, c in table["chains"].items() if "hook" in c}
    assert hooked == {"PREROUTING": ("nat", "prerouting", -100),
                      "OUTPUT": ("nat", "output", -100),
                      "FORWARD": ("filter", "forward", 0),
                      "INPUT": ("filter", "input", 0),
                      "POSTROUTING": ("nat", "postrouting", 100)}
    local = match({"fib": {"result": "type", "flags": ["daddr"]}}, "==", "local")
    assert table["rules"]["OUTPUT"] == [
        ("LOCKER", [local, {"jump": {"target": "LOCKER_PREROUTING"}}])]
    assert table["rules"]["INPUT"] == [("LOCKER", [{"jump": {"target": "LOCKER_INPUT"}}])]
    assert table["rules"]["LOCKER_FORWARD"][:2] == [
        ("LOCKER", [{"jump": {"target": "LOCKER_USER"}}]),
        ("LOCKER", [{"jump": {"target": "LOCKER_ISOLATION"}}])]
    assert table["rules"]["LOCKER_USER"] == []
    assert hook.list_rules(project=None) == suite.expected(nat={isolated, BETA})


def test_isolated_is_read_back_from_the_isolate_rule(netns: NetNS) -> None:
    hook = hooks()
    isolated = replace(ALPHA, isolated=True)
    hook.add_nat(bridges=[isolated])
    assert hook.list_rules(project="alpha").nat == {isolated}
    handle = _handle(netns, "LOCKER_INPUT", "locker:alpha:isolate")
    netns.run(["nft", "delete", "rule", "ip", "locker", "LOCKER_INPUT", "handle", handle])
    assert hook.list_rules(project="alpha") == suite.expected(nat={ALPHA})
    hook.remove_nat(bridges=[ALPHA])
    hook.add_nat(bridges=[isolated])
    hook.remove_nat(bridges=[isolated])
    assert hook.list_rules(project=None) == suite.expected()
    assert all(not (c or "").startswith("locker:alpha:")
               for rules in ruleset(netns)["rules"].values() for c, _ in rules)


@pytest.mark.parametrize("purpose", ["deny", "hairpin", "localhost", "guard", "isolate"])
def test_a_missing_policy_rule_makes_the_value_partial_and_is_added_back(
        netns: NetNS, purpose: str) -> None:
    hook = hooks()
    isolated = replace(ALPHA, isolated=True)
    hook.add_nat(bridges=[isolated])
    chain = next(c for c, rules in ruleset(netns)["rules"].items()
                 if any(comment == f"locker:alpha:{purpose}" for comment, _ in rules))
    netns.run(["nft", "delete", "rule", "ip", "locker", chain, "handle",
               _handle(netns, chain, f"locker:alpha:{purpose}")])
    found = hook.list_rules(project="alpha")
    if purpose == "isolate":
        assert found.nat == {ALPHA}
    else:
        assert found.nat == set() and found.partial == {isolated}
    hook.add_nat(bridges=[isolated])
    assert hook.list_rules(project=None) == suite.expected(nat={isolated})


def test_an_altered_policy_rule_is_unrecognised(netns: NetNS) -> None:
    hook = hooks()
    hook.add_nat(bridges=[ALPHA])
    netns.run(["nft", "delete", "rule", "ip", "locker", "LOCKER_ISOLATION", "handle",
               _handle(netns, "LOCKER_ISOLATION", "locker:alpha:deny")])
    # "ct status != dnat" compares the whole status word: not the rule Locker writes
    netns.run(["nft", "add", "rule", "ip", "locker", "LOCKER_ISOLATION", "oifname",
               "locker_alpha", "iifname", "!=", "locker_alpha", "ct", "state", "!=",
               "{ established, related }", "ct", "status", "!=", "dnat", "drop", "comment",
               '"locker:alpha:deny"'])
    found = hook.list_rules(project="alpha")
    assert [r.comment for r in found.unrecognised] == ["locker:alpha:deny"]
    assert found.partial == {ALPHA}
    hook.remove_unrecognised(project="alpha")
    hook.add_nat(bridges=[ALPHA])
    assert hook.list_rules(project=None) == suite.expected(nat={ALPHA})


def test_user_chain_is_never_read_changed_or_deleted(netns: NetNS) -> None:
    """The administrator's rules in LOCKER_USER, even one carrying a Locker
    tag or the jump comment, are not reported and survive every hook and
    the cleanup of every project; so does the table that holds them."""
    hook = hooks()
    hook.add_nat(bridges=[ALPHA])
    hook.add_forward(forwards=[WEB])
    admin = [("ip", "saddr", "198.51.100.7", "drop"),
             ("tcp", "dport", "80", "drop", "comment", '"locker:alpha:web:forward"'),
             ("counter", "return", "comment", '"LOCKER"')]
    for rule in admin:
        netns.run(["nft", "add", "rule", "ip", "locker", "LOCKER_USER", *rule])
    before = ruleset(netns)["rules"]["LOCKER_USER"]
    assert len(before) == 3
    found = hook.list_rules(project=None)
    assert found == suite.expected(nat={ALPHA}, forwards=[WEB])
    hook.remove_unrecognised(project="alpha")
    hook.add_forward(forwards=[replace(WEB, host_port=8081)])
    hook.add_nat(bridges=[ALPHA, BETA])
    hook.cleanup(project="alpha")
    hook.cleanup(project="beta")
    assert ruleset(netns)["rules"]["LOCKER_USER"] == before
    assert ruleset(netns)["rules"]["LOCKER_FORWARD"][:2] == [
        ("LOCKER", [{"jump": {"target": "LOCKER_USER"}}]),
        ("LOCKER", [{"jump": {"target": "LOCKER_ISOLATION"}}])]
    assert hook.list_rules(project=None) == suite.expected()


def test_leading_jumps_out_of_place_are_named_and_put_back(netns: NetNS) -> None:
    hook = hooks()
    hook.add_nat(bridges=[ALPHA])
    netns.run(["nft", "delete", "rule", "ip", "locker", "LOCKER_FORWARD", "handle",
               _handle(netns, "LOCKER_FORWARD", "LOCKER")])
    netns.run(["nft", "add", "rule", "ip", "locker", "LOCKER_FORWARD", "jump", "LOCKER_USER",
               "comment", '"LOCKER"'])
    found = hook.list_rules(project=None)
    assert not found.jumps and found.nat == {ALPHA}
    assert found.entry_missing == (
        "jumps to LOCKER_USER and LOCKER_ISOLATION not first in LOCKER_FORWARD, "
        "in this order",)
    hook.add_nat(bridges=[ALPHA])
    rules = ruleset(netns)["rules"]["LOCKER_FORWARD"]
    assert [r for r in rules if r[0] == "LOCKER"] == rules[:2] == [
        ("LOCKER", [{"jump": {"target": "LOCKER_USER"}}]),
        ("LOCKER", [{"jump": {"target": "LOCKER_ISOLATION"}}])]
    assert hook.list_rules(project=None) == suite.expected(nat={ALPHA})


def test_the_layout_before_the_policy_is_migrated_by_the_next_adding_hook(
        netns: NetNS) -> None:
    netns.run(["nft", "-f", "-"], input=PRE_POLICY)
    hook = hooks()
    found = hook.list_rules(project="alpha")
    assert found.forwards == {WEB} and found.nat == set() and found.partial == {ALPHA}
    assert not found.jumps
    for piece in ("chain LOCKER_USER", "chain LOCKER_ISOLATION", "chain LOCKER_INPUT",
                  "base chain INPUT", "base chain OUTPUT", "jump from INPUT to LOCKER_INPUT",
                  "jump from OUTPUT to LOCKER_PREROUTING",
                  "jump from LOCKER_FORWARD to LOCKER_USER",
                  "jump from LOCKER_FORWARD to LOCKER_ISOLATION"):
        assert any(p.startswith(piece) for p in found.entry_missing), (piece, found)
    hook.add_nat(bridges=[ALPHA])      # what the repair of a partial value calls
    assert hook.list_rules(project=None) == suite.expected(nat={ALPHA}, forwards=[WEB])
    table = ruleset(netns)
    assert [c for c, _ in table["rules"]["LOCKER_FORWARD"]] == [
        "LOCKER", "LOCKER", "locker:alpha:dispatch"]
    for chain, wanted in expected_rules(ALPHA).items():
        for rule in wanted:
            assert rule in table["rules"][chain]


def _handle(netns: NetNS, chain: str, comment: str) -> str:
    listing = json.loads(netns.run(["nft", "-j", "-a", "list", "chain", "ip", "locker",
                                    chain]).stdout)["nftables"]
    return str(next(i["rule"]["handle"] for i in listing
                    if "rule" in i and i["rule"].get("comment") == comment))


# ------------------------------------------------------------------ traffic

# Listens on ADDRESS:PORT, prints "ready", then answers every connection
# with "hello".
_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello")
    c.close()
"""
# Connects to ADDRESS:PORT and prints what came back, or why nothing did:
# "timeout" (dropped) or "refused".
_CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5) as c:
        print(c.recv(16).decode(), end="")
except socket.timeout:
    print("timeout", end="")
except ConnectionRefusedError:
    print("refused", end="")
except OSError as error:
    print(f"error {error.errno}", end="")
"""


class Topology:
    """The test's namespace is the host; each project's bridge (made by the
    netlink link backend) has one "container" namespace on it at .2; a
    neighbour namespace on 192.0.2.0/24 routes 10.0.0.0/8 through the host
    (192.0.2.1)."""

    def __init__(self, host: NetNS) -> None:
        self.host = host
        self.namespaces: list[NetNS] = []
        self.servers: list[subprocess.Popen] = []
        host.run(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
        self.neighbour = self._namespace("pneigh")
        host.run(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0",
                  "netns", self.neighbour.name])
        host.run(["ip", "addr", "add", f"{HOST}/24", "dev", "up0"])
        host.run(["ip", "link", "set", "up0", "up"])
        self.neighbour.run(["ip", "addr", "add", f"{NEIGHBOUR}/24", "dev", "eth0"])
        self.neighbour.run(["ip", "link", "set", "eth0", "up"])
        self.neighbour.run(["ip", "route", "add", "10.0.0.0/8", "via", HOST])
        self.containers: dict[str, NetNS] = {}

    def _namespace(self, prefix: str) -> NetNS:
        ns = NetNS(prefix)
        self.namespaces.append(ns)
        return ns

    def container(self, bridge: Bridge, host_part: int = 2) -> NetNS:
        """A namespace on ``bridge`` (created with the link backend) at
        ``.host_part``, routed through the gateway."""
        new_manager(NetlinkBackend()).hook.ensure_bridge(bridge=bridge, adopt=False)
        ns = self._namespace("pctr")
        veth = f"v{bridge.project[:6]}{host_part}"
        self.host.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                       "netns", ns.name])
        self.host.run(["ip", "link", "set", veth, "master", bridge.name, "up"])
        address = bridge.network[host_part]
        ns.run(["ip", "addr", "add", f"{address}/{bridge.network.prefixlen}", "dev", "eth0"])
        ns.run(["ip", "link", "set", "eth0", "up"])
        ns.run(["ip", "route", "add", "default", "via", str(bridge.gateway)])
        self.containers[str(address)] = ns
        return ns

    def serve(self, ns: NetNS | None, address: str, port: int) -> None:
        prefix = ["ip", "netns", "exec", ns.name] if ns is not None else []
        proc = subprocess.Popen([*prefix, sys.executable, "-c", _SERVER, address, str(port)],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def connect(self, ns: NetNS | None, address: str, port: int) -> str:
        """From ``ns`` (None: the host itself)."""
        argv = [sys.executable, "-c", _CLIENT, address, str(port)]
        if ns is None:
            return self.host.run(argv).stdout
        return ns.run(argv).stdout

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for ns in self.namespaces:
            ns.delete()


def test_a_routed_neighbour_reaches_only_the_forwards(netns: NetNS) -> None:
    with Topology(netns) as net:
        web = net.container(ALPHA)
        net.serve(web, "0.0.0.0", 80)
        assert net.connect(net.neighbour, "10.1.1.2", 80) == "hello"     # before: open
        hook = hooks()
        hook.add_nat(bridges=[ALPHA])
        assert net.connect(net.neighbour, "10.1.1.2", 80) == "timeout"
        hook.add_forward(forwards=[WEB])
        assert net.connect(net.neighbour, HOST, 8080) == "hello"
        assert net.connect(net.neighbour, "10.1.1.2", 80) == "timeout"


def test_a_drop_in_locker_user_wins_and_stays(netns: NetNS) -> None:
    with Topology(netns) as net:
        web = net.container(ALPHA)
        net.serve(web, "0.0.0.0", 80)
        hook = hooks()
        hook.add_nat(bridges=[ALPHA])
        hook.add_forward(forwards=[WEB])
        assert net.connect(net.neighbour, HOST, 8080) == "hello"
        netns.run(["nft", "add", "rule", "ip", "locker", "LOCKER_USER", "ip", "saddr",
                   NEIGHBOUR, "drop"])
        assert net.connect(net.neighbour, HOST, 8080) == "timeout"
        hooks().add_forward(forwards=[replace(WEB, host_port=8081)])    # as `ports` would
        hooks().add_nat(bridges=[ALPHA])
        assert net.connect(net.neighbour, HOST, 8080) == "timeout"
        assert net.connect(net.neighbour, HOST, 8081) == "timeout"
        assert len(ruleset(netns)["rules"]["LOCKER_USER"]) == 1


BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


@pytest.fixture(params=["br_netfilter", "no br_netfilter"])
def bridge_nf(request, netns: NetNS) -> str:
    """Bridged traffic through netfilter or not: the per-namespace sysctl of
    the test's own namespace (the module is never loaded by the tests)."""
    done = netns.run(["cat", BRIDGE_NF], check=False)
    if request.param == "br_netfilter" and done.returncode != 0:
        pytest.skip("br_netfilter is not loaded")
    if done.returncode == 0:
        value = "1" if request.param == "br_netfilter" else "0"
        netns.run(["sh", "-c", f"echo {value} > {BRIDGE_NF}"])
    return request.param


def test_forwards_from_the_host_itself_and_hairpin(netns: NetNS, bridge_nf: str) -> None:
    with Topology(netns) as net:
        web = net.container(ALPHA)
        net.container(ALPHA, 3)
        net.serve(web, "0.0.0.0", 80)
        hook = hooks()
        hook.add_nat(bridges=[ALPHA])
        assert net.connect(None, HOST, 8080) == "refused"               # before: nothing
        hook.add_forward(forwards=[WEB, replace(WEB, host_port=8082,
                                                host_ip=IPv4Address("127.0.0.1"))])
        assert net.connect(None, HOST, 8080) == "hello"
        assert net.connect(None, "127.0.0.1", 8080) == "hello"
        assert net.connect(None, "127.0.0.1", 8082) == "hello"
        assert net.connect(net.neighbour, HOST, 8082) != "hello"        # 127.0.0.1 only
        sibling = net.containers["10.1.1.3"]
        assert net.connect(sibling, HOST, 8080) == "hello"              # hairpin
        if bridge_nf == "br_netfilter":
            # br_netfilter DNATs at the bridge and sends the packet back out
            # the port it came in, which a bridge does only in hairpin mode
            netns.run(["ip", "link", "set", "valpha2", "type", "bridge_slave", "hairpin", "on"])
        assert net.connect(web, HOST, 8080) == "hello"                  # to itself


def loopback_via_the_gateway(ns: NetNS, bridge: Bridge) -> None:
    """Make ``ns`` send its packets for 127.0.0.1 to the bridge's gateway
    and take the answers (from 127.0.0.1) in: drop its own loopback
    address (and so its local 127.0.0.0/8 routes), route 127.0.0.1 via the
    gateway, accept loopback sources on its interface."""
    ns.run(["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"])
    ns.run(["ip", "route", "add", "127.0.0.1/32", "via", str(bridge.gateway)])
    ns.run(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet"])


def test_the_guard_keeps_the_bridge_from_the_hosts_loopback(netns: NetNS) -> None:
    """CVE-2020-8558: route_localnet is on for the bridge; a neighbour on
    the bridge that routes 127.0.0.1 to the gateway gets nowhere."""
    with Topology(netns) as net:
        attacker = net.container(ALPHA)
        loopback_via_the_gateway(attacker, ALPHA)
        net.serve(None, "127.0.0.1", 9999)
        assert net.connect(attacker, "127.0.0.1", 9999) == "hello"      # without the guard
        hooks().add_nat(bridges=[ALPHA])
        assert net.connect(attacker, "127.0.0.1", 9999) == "timeout"
        assert net.connect(None, "127.0.0.1", 9999) == "hello"


def test_projects_are_apart_and_isolated_ones_see_only_their_gateway(
        netns: NetNS, bridge_nf: str) -> None:
    with Topology(netns) as net:
        alpha, beta = net.container(ALPHA), net.container(BETA)
        for ns in (alpha, beta):
            net.serve(ns, "0.0.0.0", 80)
        net.serve(None, "0.0.0.0", 9998)                               # a host service
        assert net.connect(alpha, "10.1.2.2", 80) == "hello"           # before: open
        hook = hooks()
        hook.add_nat(bridges=[ALPHA, BETA])
        beta_web = Forward("beta", "web", 8090, IPv4Address("10.1.2.2"), 80)
        hook.add_forward(forwards=[beta_web])
        assert net.connect(alpha, "10.1.2.2", 80) == "timeout"         # deny of beta
        assert net.connect(beta, "10.1.1.2", 80) == "timeout"
        for address in (HOST, str(BETA.gateway), str(ALPHA.gateway)):
            assert net.connect(alpha, address, 9998) == "hello"
        hook.remove_nat(bridges=[ALPHA])
        hook.add_nat(bridges=[replace(ALPHA, isolated=True)])
        assert net.connect(alpha, HOST, 9998) == "timeout"
        assert net.connect(alpha, str(BETA.gateway), 9998) == "timeout"
        assert net.connect(alpha, str(ALPHA.gateway), 9998) == "hello"
        assert net.connect(alpha, HOST, 8090) == "hello"               # beta's forward
        assert net.connect(beta, HOST, 9998) == "hello"                # beta is not isolated
