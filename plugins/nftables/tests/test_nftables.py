"""Checks that only make sense for the nftables backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from ipaddress import IPv4Address

import pytest

from locker.errors import BackendError
from locker.model import Forward, Ruleset, TaggedRule
from locker.plugins import new_manager
from locker.testing import firewall_suite as suite
from locker.testing.netns import NetNS

from locker_nftables import NftablesBackend, kernel, rules

FOREIGN_INET_FILTER = """
table inet filter {
    chain input { type filter hook input priority filter; policy accept; }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept comment "admin: lan out"
    }
}
"""
VICTIM = "table inet victim {\n    chain c {\n    }\n}\n"


def nft(netns: NetNS, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    return netns.run(["nft", *argv], **kwargs)


def populate(backend: NftablesBackend) -> None:
    hook = new_manager(backend).hook
    hook.add_nat(bridges=[suite.BRIDGE1, suite.BRIDGE2])
    hook.add_forward(forwards=suite.FORWARDS1 + suite.FORWARDS2)
    hook.add_link(links=suite.LINKS1 + suite.LINKS2)


def test_plugin_import_does_not_import_nftables() -> None:
    code = ("import sys, locker_nftables; from locker_nftables import NftablesBackend; "
            "NftablesBackend(); assert 'nftables' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("comment", [
    'x"; delete table inet victim; #', "a" * 129, "new\nline", "spa ce", "", "é",
])
def test_unsafe_comment_is_refused_before_the_kernel(comment: str) -> None:
    # No namespace needed: the refusal must come before any kernel call.
    with pytest.raises(BackendError, match="refusing the rule comment"):
        kernel.run([{"add": {"rule": {"family": "ip", "table": "locker",
                                      "chain": "LOCKER_FORWARD", "expr": [{"accept": None}],
                                      "comment": comment}}}], "test")


def test_longest_tag_fits_the_comment_limit() -> None:
    name = "A" * 32
    tag = str(rules.Tag(name, "link-back", name, name))
    kernel.check_comment(tag)


@pytest.mark.privileged
def test_unsafe_comment_reaches_nothing(netns: NetNS) -> None:
    nft(netns, "-f", "-", input=VICTIM)
    before = nft(netns, "list", "ruleset").stdout
    with pytest.raises(BackendError):
        kernel.run([{"add": {"table": {"family": "ip", "name": "locker"}}},
                    {"add": {"chain": {"family": "ip", "table": "locker", "name": "c"}}},
                    {"add": {"rule": {"family": "ip", "table": "locker", "chain": "c",
                                      "expr": [{"accept": None}],
                                      "comment": 'x"; delete table inet victim; #'}}}],
                   "test")
    assert nft(netns, "list", "ruleset").stdout == before


@pytest.mark.privileged
def test_saved_ruleset_round_trips(netns: NetNS) -> None:
    backend = NftablesBackend()
    populate(backend)
    saved = nft(netns, "list", "ruleset").stdout
    listed = new_manager(backend).hook.list_rules(project=None)
    nft(netns, "flush", "ruleset")
    assert nft(netns, "list", "ruleset").stdout == ""
    nft(netns, "-f", "-", input=saved)
    assert nft(netns, "list", "ruleset").stdout == saved
    assert new_manager(backend).hook.list_rules(project=None) == listed


@pytest.mark.privileged
def test_foreign_inet_filter_forward_chain_stays_identical(netns: NetNS) -> None:
    nft(netns, "-f", "-", input=FOREIGN_INET_FILTER)
    before = nft(netns, "list", "table", "inet", "filter").stdout
    hook = new_manager(NftablesBackend()).hook
    populate(NftablesBackend())
    hook.remove_forward(forwards=suite.FORWARDS1)
    hook.cleanup(project=suite.P2)
    assert nft(netns, "list", "table", "inet", "filter").stdout == before
    assert 'comment "admin: lan out"' in before


@pytest.mark.privileged
def test_flushed_table_comes_back_on_next_add(netns: NetNS) -> None:
    hook = new_manager(NftablesBackend()).hook
    populate(NftablesBackend())
    nft(netns, "flush", "ruleset")
    assert hook.list_rules(project=None) == Ruleset()
    hook.add_forward(forwards=suite.FORWARDS1)
    assert hook.list_rules(project=None) == suite.expected(forwards=suite.FORWARDS1)


def elements(netns: NetNS, name: str) -> list:
    """The elements of one of Locker's maps or sets, read with ``nft -j``."""
    listing = json.loads(nft(netns, "-j", "list", "table", "ip", "locker").stdout)
    for item in listing["nftables"]:
        body = item.get("map") or item.get("set")
        if body is not None and body["name"] == name:
            return body.get("elem", [])
    raise AssertionError(f"no map or set {name}")


def chain_rules(netns: NetNS, chain: str) -> list[dict]:
    listing = json.loads(nft(netns, "-j", "-a", "list", "chain", "ip", "locker", chain).stdout)
    return [item["rule"] for item in listing["nftables"] if "rule" in item]


@pytest.mark.privileged
def test_half_a_forward_is_not_listed_and_is_completed(netns: NetNS) -> None:
    hook = new_manager(NftablesBackend()).hook
    forward = suite.FORWARDS1[1]
    hook.add_forward(forwards=[forward])
    nft(netns, "delete", "element", "ip", "locker", "alpha_fwdip_tcp",
        "{ 10.1.1.2 . 443 . 8443 . 192.0.2.10 }")
    assert hook.list_rules(project=None).forwards == frozenset()
    hook.add_forward(forwards=[forward])
    assert hook.list_rules(project=None).forwards == {forward}
    assert len(elements(netns, "alpha_dnatip_addr")) == 1
    assert len(elements(netns, "alpha_fwdip_tcp")) == 1


@pytest.mark.privileged
def test_duplicate_jumps_are_healed(netns: NetNS) -> None:
    hook = new_manager(NftablesBackend()).hook
    hook.add_link(links=suite.LINKS1)
    nft(netns, "add", "rule", "ip", "locker", "FORWARD", "jump", "LOCKER_FORWARD",
        "comment", '"LOCKER"')
    assert not hook.list_rules(project=None).jumps
    hook.add_link(links=suite.LINKS1)
    forward_chain = nft(netns, "list", "chain", "ip", "locker", "FORWARD").stdout
    assert forward_chain.count("jump LOCKER_FORWARD") == 1
    assert hook.list_rules(project=None).jumps


@pytest.mark.privileged
def test_libnftables_error_text_reaches_the_user(netns: NetNS) -> None:
    with pytest.raises(BackendError, match="nftables refused to test: .*No such file"):
        kernel.run([{"add": {"rule": {"family": "ip", "table": "nosuch", "chain": "c",
                                      "expr": [{"accept": None}], "comment": "ok"}}}], "test")


@pytest.mark.parametrize("rule", [r for value in suite.LINKS1 for r in rules.link_rules(value)]
                         + rules.nat_rules(suite.BRIDGE1), ids=lambda rule: rule.comment)
def test_built_rules_parse_back_to_their_key(rule: rules.Rule) -> None:
    assert rules.parse_rule(rule.chain, rule.comment, list(rule.expr)) == (rule.key, False)


@pytest.mark.parametrize("rule", [
    r for value in suite.FORWARDS1 for r in rules.legacy_forward_rules(value)
] + [r for value in suite.LINKS1 for r in rules.link_rules(value)], ids=lambda r: r.comment)
def test_old_layout_rules_parse_back_as_legacy(rule: rules.Rule) -> None:
    chain = "LOCKER_PREROUTING" if rule.key[0] == "dnat" else "LOCKER_FORWARD"
    assert rules.parse_rule(chain, rule.comment, list(rule.expr)) == (rule.key, True)


@pytest.mark.parametrize("forward", suite.FORWARDS1 + suite.FORWARDS2, ids=str)
def test_forward_elements_parse_back(forward: Forward) -> None:
    from locker_nftables import layout
    for purpose, group in layout.forward_elements(forward).items():
        store = next(s for s in layout.stores(forward.project) if s.name == group[0].store)
        assert layout.parse_elements(forward.project, store, group) == (purpose, forward)
        other = next(s for s in layout.stores("gamma") if s.purpose == store.purpose)
        assert layout.parse_elements("gamma", other, group) is None


def test_rule_with_extra_match_or_wrong_chain_is_not_parsed() -> None:
    rule = rules.legacy_forward_rules(suite.FORWARDS1[0])[0]
    extra = [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "x"}}]
    assert rules.parse_rule(rule.chain, rule.comment, extra + list(rule.expr)) is None
    assert rules.parse_rule("LOCKER_FORWARD", rule.comment, list(rule.expr)) is None
    assert rules.parse_rule(rule.chain, "locker:other:web:dnat", list(rule.expr)) is not None
    assert rules.parse_rule(rule.chain, "locker:alpha:web:forward", list(rule.expr)) is None
    link = rules.link_rules(suite.LINKS1[0])[0]
    assert rules.parse_rule("LOCKER_FWD_beta", link.comment, list(link.expr)) is None


def test_every_firewall_hook_is_implemented() -> None:
    from locker.hookspecs import FIREWALL_HOOKS
    manager = new_manager(NftablesBackend())
    for name in FIREWALL_HOOKS:
        assert len(getattr(manager.hook, name).get_hookimpls()) == 1, name


@pytest.mark.privileged
def test_unrecognised_rule_is_shown_as_nft_would(netns: NetNS) -> None:
    hook = new_manager(NftablesBackend()).hook
    hook.add_forward(forwards=[suite.FORWARD])
    nft(netns, "add", "rule", "ip", "locker", "LOCKER_FORWARD",
        "ip saddr 10.9.0.0/16 tcp dport { 99, 100 } counter drop",
        "comment", '"locker:alpha:web:forward"')
    [rule] = hook.list_rules(project=None).unrecognised
    assert rule == TaggedRule("alpha", "locker:alpha:web:forward", "ip locker LOCKER_FORWARD",
                              "ip saddr 10.9.0.0/16 tcp dport { 99, 100 } counter drop")


@pytest.mark.privileged
def test_altered_jump_is_named_and_replaced(netns: NetNS) -> None:
    """A PREROUTING jump without its ``fib daddr type local`` would DNAT
    transit traffic too: it is not Locker's jump, and add_nat replaces it."""
    hook = new_manager(NftablesBackend()).hook
    hook.add_nat(bridges=[suite.BRIDGE1])
    listing = nft(netns, "-a", "list", "chain", "ip", "locker", "PREROUTING").stdout
    handle = next(line.rsplit("# handle ", 1)[1] for line in listing.splitlines()
                  if "jump LOCKER_PREROUTING" in line)
    nft(netns, "replace", "rule", "ip", "locker", "PREROUTING", "handle", handle,
        "jump", "LOCKER_PREROUTING", "comment", '"LOCKER"')
    found = hook.list_rules(project=None)
    assert not found.jumps
    assert set(found.entry_missing) == {"jump from PREROUTING to LOCKER_PREROUTING",
                                        "altered jump rule in chain PREROUTING"}
    hook.add_nat(bridges=[suite.BRIDGE1])
    assert hook.list_rules(project=None) == suite.expected(nat={suite.BRIDGE1})
    chain = nft(netns, "list", "chain", "ip", "locker", "PREROUTING").stdout
    assert chain.count("jump LOCKER_PREROUTING") == 1 and "fib daddr type local" in chain


@pytest.mark.privileged
@pytest.mark.skipif(shutil.which("iptables-legacy") is None, reason="needs iptables-legacy")
def test_legacy_forward_policy_drop_is_a_blocker(netns: NetNS) -> None:
    """Packets pass the legacy store too where its filter table is loaded."""
    hook = new_manager(NftablesBackend()).hook
    netns.run(["iptables-legacy", "-w", "-P", "FORWARD", "DROP"])
    [blocker] = hook.find_blockers(bridges=[suite.BRIDGE1])
    assert blocker.what.startswith("iptables-legacy chain filter FORWARD")
    assert blocker.fix == ("iptables-legacy -I FORWARD -i locker_alpha -j ACCEPT && "
                           "iptables-legacy -I FORWARD -o locker_alpha -j ACCEPT")
    netns.run(["sh", "-c", blocker.fix])
    assert hook.find_blockers(bridges=[suite.BRIDGE1]) == []


@pytest.mark.privileged
def test_blocker_with_a_drop_rule_and_a_set_of_bridges(netns: NetNS) -> None:
    hook = new_manager(NftablesBackend()).hook
    nft(netns, "-f", "-", input=(
        "table ip hostfw {\n chain forward {\n"
        "  type filter hook forward priority 0; policy accept;\n"
        '  oifname { "locker_alpha", "locker_beta" } accept\n'
        '  iifname "locker_beta" accept\n  counter drop\n }\n}\n'))
    [blocker] = hook.find_blockers(bridges=[suite.BRIDGE1, suite.BRIDGE2])
    assert blocker.what == ("nftables chain ip hostfw forward drops forwarded traffic from "
                            "locker_alpha (an unconditional drop rule)")
    with open("/proc/thread-self/net/ip_tables_names") as names:
        assert names.read().split() == [], "asking loaded the legacy store"


@pytest.mark.privileged
def test_host_firewalls_are_reported_and_their_chains_left_to_them(netns, monkeypatch) -> None:
    from locker import blockers
    from locker.model import Blocker
    host = blockers.HostFirewalls((Blocker("firewalld rejects ...", "firewall-cmd ..."),),
                                  frozenset({("inet", "firewalld")}), manages_legacy_forward=True)
    monkeypatch.setattr(blockers, "host_firewalls", lambda bridges: host)
    nft(netns, "-f", "-", input="table inet firewalld {\n chain filter_FORWARD {\n"
        "  type filter hook forward priority 10; policy drop;\n }\n}\n")
    netns.run(["iptables-legacy", "-w", "-P", "FORWARD", "DROP"])
    hook = new_manager(NftablesBackend()).hook
    assert hook.find_blockers(bridges=[suite.BRIDGE1]) == list(host.blockers)


def test_element_commands_are_merged_deletions_first() -> None:
    def element(verb, name, elem):
        return {verb: {"element": {"family": "ip", "table": "locker", "name": name,
                                   "elem": [elem]}}}
    rule = {"add": {"rule": {"family": "ip", "table": "locker", "chain": "c", "expr": []}}}
    gone = {"delete": {"rule": {"family": "ip", "table": "locker", "chain": "c", "handle": 4}}}
    commands = [element("add", "m", 1), rule, element("delete", "m", 2), element("add", "s", 3),
                element("add", "m", 4), gone]
    assert kernel.grouped(commands) == [
        gone, element("delete", "m", 2), rule,
        {"add": {"element": {"family": "ip", "table": "locker", "name": "m", "elem": [1, 4]}}},
        element("add", "s", 3)]


# ------------------------------------------------------------------ port ranges

SHIFTED = Forward("alpha", "web", 8000, IPv4Address("10.1.1.2"), 9000, count=11)
SAME = Forward("alpha", "web", 7000, IPv4Address("10.1.1.2"), 7000, "udp",
               IPv4Address("192.0.2.1"), count=3)
SAME_TCP = Forward("alpha", "web", 9100, IPv4Address("10.1.1.2"), 9100, count=101)


def _elements(netns: NetNS) -> dict[str, list]:
    """Each store's elements as ``nft -j`` lists them (key, value, comment)."""
    listing = json.loads(nft(netns, "-j", "list", "table", "ip", "locker").stdout)["nftables"]
    found: dict[str, list] = {}
    for item in listing:
        body = item.get("map") or item.get("set")
        if body is None:
            continue
        found[body["name"]] = []
        for elem in body.get("elem", []):
            key, value = (elem if isinstance(elem, list) else (elem, None))
            found[body["name"]].append((key["elem"]["val"], value, key["elem"]["comment"]))
        if "flags" in body:
            found[body["name"] + " flags"] = body["flags"]
    return found


def test_a_range_of_the_same_ports_is_one_interval_element_and_traffic_reaches_it(
        netns: NetNS) -> None:
    from locker.testing.traffic import Lab
    hook = new_manager(NftablesBackend()).hook
    with Lab(netns) as lab:
        lab.bridge(suite.BRIDGE1.name, "10.1.1.1/24")
        lab.wire("web", "vweb", None, [f"{suite.WEB_IP}/24"], gateway="10.1.1.1",
                 master=suite.BRIDGE1.name)
        lab.wire("outside", "uplink", f"{suite.HOST_IP}/24", [f"{suite.OUTSIDE_IP}/24"],
                 routes=["10.1.1.0/24 via 192.0.2.1"])
        lab.forwarding()
        lab.serve("web", "web", "tcp/9000", "tcp/9005", "tcp/9010", "tcp/9011", "tcp/9100",
                  "tcp/9150", "tcp/9200", "udp/7000", "udp/7001", "udp/7002", "udp/7003")
        hook.add_nat(bridges=[suite.BRIDGE1])
        hook.add_forward(forwards=[SHIFTED, SAME, SAME_TCP])
        suite.stores.store("nftables").drop_after_forward(netns)
        found = _elements(netns)
        assert found["alpha_dnatr_addr"] == [
            ({"concat": ["tcp", {"range": [9100, 9200]}]}, "10.1.1.2", "locker:alpha:web:dnat")]
        assert found["alpha_dnatipr_addr"] == [
            ({"concat": ["192.0.2.1", "udp", {"range": [7000, 7002]}]}, "10.1.1.2",
             "locker:alpha:web:dnat")]
        assert found["alpha_fwdr_tcp"] == [
            ({"concat": ["10.1.1.2", {"range": [9100, 9200]}, {"range": [9100, 9200]}]}, None,
             "locker:alpha:web:forward")]
        assert found["alpha_fwdipr_udp"] == [
            ({"concat": ["10.1.1.2", {"range": [7000, 7002]}, {"range": [7000, 7002]},
                         "192.0.2.1"]}, None, "locker:alpha:web:forward")]
        assert found["alpha_fwdr_tcp flags"] == ["interval"]
        # the shifted range: one element per port (nft 1.0.6 cannot shift a range)
        mark = "locker:alpha:web:dnat:range-8000-8010"
        assert sorted(e[0]["concat"][1] for e in found["alpha_dnat_port"]) == list(
            range(8000, 8011))
        assert {e[2] for e in found["alpha_dnat_port"]} == {mark}
        assert sorted(e[1] for e in found["alpha_dnat_port"]) == list(range(9000, 9011))
        assert len(found["alpha_fwd_tcp"]) == 11
        read = hook.list_rules(project="alpha")
        assert read.forwards == {SHIFTED, SAME, SAME_TCP}
        assert read.partial == frozenset() and read.unrecognised == () and read.jumps
        for host_port in (8000, 8005, 8010):   # first, middle, last: shifted by 1000
            answer = lab.call("outside", "tcp", suite.HOST_IP, host_port)
            assert answer and answer.split()[:2] == ["web", str(host_port + 1000)], answer
        for proto, ports in (("udp", (7000, 7001, 7002)), ("tcp", (9100, 9150, 9200))):
            for port in ports:
                answer = lab.call("outside", proto, suite.HOST_IP, port)
                assert answer and answer.split()[:2] == ["web", str(port)], (proto, answer)
        assert lab.call("outside", "udp", suite.HOST_IP, 7003, expect=False) is None
        assert lab.call("outside", "tcp", suite.HOST_IP, 8011, expect=False) is None
        hook.remove_forward(forwards=[SHIFTED, SAME_TCP])
        assert hook.list_rules(project="alpha").forwards == {SAME}
        assert lab.call("outside", "tcp", suite.HOST_IP, 8005, expect=False) is None
        assert lab.call("outside", "tcp", suite.HOST_IP, 9150, expect=False) is None
        assert _elements(netns)["alpha_dnat_port"] == []


def test_a_shifted_range_missing_one_port_is_unrecognised_and_repaired(netns: NetNS) -> None:
    hook = new_manager(NftablesBackend()).hook
    hook.add_forward(forwards=[SHIFTED])
    nft(netns, "delete", "element", "ip", "locker", "alpha_fwd_tcp",
        "{ 10.1.1.2 . 9005 . 8005 }")
    read = hook.list_rules(project="alpha")
    assert read.forwards == frozenset() and read.partial == {SHIFTED}   # its DNAT half only
    assert [r.comment for r in read.unrecognised] == ["locker:alpha:web:forward:range-8000-8010"]
    hook.remove_unrecognised(project="alpha")
    hook.add_forward(forwards=[SHIFTED])
    read = hook.list_rules(project="alpha")
    assert read.forwards == {SHIFTED} and read.unrecognised == ()
    assert len(_elements(netns)["alpha_fwd_tcp"]) == 11


def test_an_older_projects_skeleton_gets_its_range_maps_from_the_next_add(netns: NetNS) -> None:
    """A host of a Locker before ranges has the project's maps and lookups
    without the interval ones: reported missing, made by the next add."""
    hook = new_manager(NftablesBackend()).hook
    hook.add_forward(forwards=[suite.FORWARD])
    listing = json.loads(nft(netns, "-j", "-a", "list", "table", "ip", "locker").stdout)
    for item in listing["nftables"]:
        rule = item.get("rule")
        if rule and rule["comment"] == "locker:alpha:dispatch" and (
                "dnatr_" in json.dumps(rule) or "dnatipr_" in json.dumps(rule)
                or "fwdr_" in json.dumps(rule) or "fwdipr_" in json.dumps(rule)):
            nft(netns, "delete", "rule", "ip", "locker", rule["chain"], "handle",
                str(rule["handle"]))
    for name in ("dnatr_addr", "dnatipr_addr", "fwdr_tcp", "fwdr_udp", "fwdipr_tcp",
                 "fwdipr_udp"):
        kind = "map" if "dnat" in name else "set"
        nft(netns, "delete", kind, "ip", "locker", f"alpha_{name}")
    read = hook.list_rules(project="alpha")
    assert read.forwards == {suite.FORWARD} and not read.jumps
    assert "map alpha_dnatr_addr of project alpha in table ip locker" in read.entry_missing
    hook.add_forward(forwards=[SAME_TCP])
    read = hook.list_rules(project="alpha")
    assert read.jumps and read.entry_missing == ()
    assert read.forwards == {suite.FORWARD, SAME_TCP}
    assert _elements(netns)["alpha_fwdr_tcp flags"] == ["interval"]
