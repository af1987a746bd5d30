"""The per-project layout of the nftables backend: what it puts in the
kernel (read with ``nft -j``), the old layout's migration, and what it
reads."""

from __future__ import annotations

import json
from ipaddress import IPv4Address

import pytest

from locker.model import Forward
from locker.plugins import new_manager
from locker.testing import firewall_suite as suite
from locker.testing.netns import NetNS

from locker_nftables import NftablesBackend, kernel

pytestmark = pytest.mark.privileged

#: Project alpha as the old layout wrote it: every rule in the shared chains.
OLD_LAYOUT = """
table ip locker {
    chain LOCKER_PREROUTING {
        tcp dport 8080 dnat to 10.1.1.2:80 comment "locker:alpha:web:dnat"
        ip daddr 192.0.2.10 tcp dport 8443 dnat to 10.1.1.2:443 comment "locker:alpha:web:dnat"
    }
    chain LOCKER_FORWARD {
        ip daddr 10.1.1.2 tcp dport 80 ct status dnat ct original proto-dst 8080 accept comment "locker:alpha:web:forward"
        ip daddr 10.1.1.2 tcp dport 443 ct status dnat ct original proto-dst 8443 ct original ip daddr 192.0.2.10 accept comment "locker:alpha:web:forward"
        ip saddr 10.1.1.2 ip daddr 10.1.1.3 accept comment "locker:alpha:web:link:dns"
        ip saddr 10.1.1.3 ip daddr 10.1.1.2 accept comment "locker:alpha:web:link-back:dns"
        iifname "locker_alpha" oifname != "locker_alpha" accept comment "locker:alpha:outbound"
        oifname "locker_alpha" ct state established,related accept comment "locker:alpha:replies"
    }
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
}
"""
OLD_VALUES = suite.expected(nat={suite.BRIDGE1}, forwards=suite.FORWARDS1[:2],
                            links=suite.LINKS1[:1])


def listing(netns: NetNS) -> list[dict]:
    out = netns.run(["nft", "-j", "list", "table", "ip", "locker"]).stdout
    return json.loads(out)["nftables"]


def rules_of(netns: NetNS, chain: str) -> list[dict]:
    return [i["rule"] for i in listing(netns) if "rule" in i and i["rule"]["chain"] == chain]


def element_comments(netns: NetNS) -> list[str]:
    found = []
    for item in listing(netns):
        body = item.get("map") or item.get("set")
        for elem in (body or {}).get("elem", []):
            key = elem[0] if isinstance(elem, list) else elem
            found.append(key["elem"].get("comment"))
    return found


def many_forwards(project: str, count: int, third_octet: int) -> list[Forward]:
    return [Forward(project, f"c{i}", 10000 + i,
                    IPv4Address(f"10.{third_octet}.{i // 250}.{i % 250 + 2}"), 80)
            for i in range(count)]


def test_packet_path_does_not_grow_with_forwards(netns: NetNS) -> None:
    """One dispatch rule per project in each shared chain, four DNAT map
    lookups (two of them for ranges) in the project's prerouting chain,
    however many forwards; and
    every forward is a pair of tagged elements."""
    hook = new_manager(NftablesBackend()).hook
    hook.add_nat(bridges=[suite.BRIDGE1, suite.BRIDGE2])
    hook.add_forward(forwards=many_forwards(suite.P1, 300, 9))
    hook.add_forward(forwards=suite.FORWARDS2)
    shared = {c: [r["comment"] for r in rules_of(netns, c)]
              for c in ("LOCKER_PREROUTING", "LOCKER_FORWARD")}
    dispatch = ["locker:alpha:dispatch", "locker:beta:dispatch"]
    assert shared == {"LOCKER_PREROUTING": dispatch,
                      "LOCKER_FORWARD": ["LOCKER", "LOCKER"] + dispatch}
    assert [r["expr"][-1]["jump"]["target"] for r in rules_of(netns, "LOCKER_PREROUTING")] == [
        "LOCKER_PRE_alpha", "LOCKER_PRE_beta"]
    pre = rules_of(netns, "LOCKER_PRE_alpha")
    assert len(pre) == 4 and all("dnat" in r["expr"][0] for r in pre)
    assert "ip" in json.dumps(pre[0]) and "daddr" in json.dumps(pre[0]["expr"][0]["dnat"]["addr"])
    comments = element_comments(netns)
    assert sum(c == "locker:alpha:c7:dnat" for c in comments) == 2     # address and port
    assert sum(c == "locker:alpha:c7:forward" for c in comments) == 1
    assert len(comments) == 3 * (300 + len(suite.FORWARDS2))
    assert len(hook.list_rules(project=suite.P1).forwards) == 300


def test_saved_ruleset_with_maps_loads_in_a_fresh_namespace(netns: NetNS) -> None:
    populate = new_manager(NftablesBackend()).hook
    populate.add_nat(bridges=[suite.BRIDGE1])
    populate.add_forward(forwards=suite.FORWARDS1)
    saved = netns.run(["nft", "list", "ruleset"]).stdout
    assert 'comment "locker:alpha:web:dnat" : 10.1.1.2' in saved
    with NetNS() as fresh:
        fresh.run(["nft", "-f", "-"], input=saved)
        assert fresh.run(["nft", "list", "ruleset"]).stdout == saved


def test_old_layout_is_listed_and_moved_by_the_next_adding_hook(netns: NetNS) -> None:
    netns.run(["nft", "-f", "-"], input=OLD_LAYOUT)
    hook = new_manager(NftablesBackend()).hook
    hook.add_forward(forwards=suite.FORWARDS2)          # another project, new layout
    beta = rules_of(netns, "LOCKER_FWD_beta")
    found = hook.list_rules(project=suite.P1)
    assert (found.forwards, found.links) == (OLD_VALUES.forwards, OLD_VALUES.links)
    assert found.nat == set() and found.partial == OLD_VALUES.nat  # no deny, hairpin...
    assert not found.jumps and any("old layout" in p for p in found.entry_missing)

    hook.add_nat(bridges=[suite.BRIDGE1])

    for chain, lead in (("LOCKER_PREROUTING", []), ("LOCKER_FORWARD", ["LOCKER", "LOCKER"])):
        assert [r["comment"] for r in rules_of(netns, chain)] == lead + [
            "locker:beta:dispatch", "locker:alpha:dispatch"]
    fwd = [r.get("comment") for r in rules_of(netns, "LOCKER_FWD_alpha")]
    assert {"locker:alpha:web:link:dns", "locker:alpha:web:link-back:dns",
            "locker:alpha:outbound", "locker:alpha:replies"} <= set(fwd)
    comments = element_comments(netns)
    assert comments.count("locker:alpha:web:dnat") == 4 and \
        comments.count("locker:alpha:web:forward") == 2
    assert hook.list_rules(project=suite.P1) == OLD_VALUES
    assert rules_of(netns, "LOCKER_FWD_beta") == beta


def test_old_layout_rules_are_removed_by_the_removing_hooks(netns: NetNS) -> None:
    netns.run(["nft", "-f", "-"], input=OLD_LAYOUT)
    hook = new_manager(NftablesBackend()).hook
    hook.remove_forward(forwards=suite.FORWARDS1[:2])
    hook.remove_link(links=suite.LINKS1[:1])
    assert [r["comment"] for r in rules_of(netns, "LOCKER_FORWARD")] == [
        "LOCKER", "LOCKER", "locker:alpha:outbound", "locker:alpha:replies"]
    assert rules_of(netns, "LOCKER_PREROUTING") == []
    hook.cleanup(project=suite.P1)
    assert hook.list_rules(project=None) == suite.Ruleset(jumps=True)


@pytest.mark.parametrize("chain", ["LOCKER_PREROUTING", "LOCKER_FORWARD"])
def test_missing_dispatch_rule_is_named_and_restored(netns: NetNS, chain: str) -> None:
    hook = new_manager(NftablesBackend()).hook
    hook.add_nat(bridges=[suite.BRIDGE1])
    hook.add_forward(forwards=[suite.FORWARD])
    netns.run(["nft", "flush", "chain", "ip", "locker", chain])
    found = hook.list_rules(project=suite.P1)
    target = "LOCKER_PRE_alpha" if chain == "LOCKER_PREROUTING" else "LOCKER_FWD_alpha"
    assert not found.jumps
    lead = ("jump from LOCKER_FORWARD to LOCKER_USER",
            "jump from LOCKER_FORWARD to LOCKER_ISOLATION") if chain == "LOCKER_FORWARD" else ()
    assert found.entry_missing == lead + (f"dispatch rule jump {target} in chain {chain}",)
    assert hook.list_rules(project=suite.P2) == suite.Ruleset(jumps=not lead,
                                                              entry_missing=lead)
    hook.add_nat(bridges=[suite.BRIDGE1])
    assert hook.list_rules(project=suite.P1) == suite.expected(
        nat={suite.BRIDGE1}, forwards=[suite.FORWARD])
    assert len(rules_of(netns, chain)) == 1 + len(lead)


def test_missing_project_chain_and_lookup_are_named(netns: NetNS) -> None:
    hook = new_manager(NftablesBackend()).hook
    hook.add_forward(forwards=[suite.FORWARD])
    handle = json.loads(netns.run(["nft", "-j", "-a", "list", "chain", "ip", "locker",
                                   "LOCKER_PRE_alpha"]).stdout)["nftables"][2]["rule"]["handle"]
    netns.run(["nft", "delete", "rule", "ip", "locker", "LOCKER_PRE_alpha", "handle",
               str(handle)])
    found = hook.list_rules(project=suite.P1)
    assert not found.jumps and len(found.entry_missing) == 1
    assert "lookup" in found.entry_missing[0] and "LOCKER_PRE_alpha" in found.entry_missing[0]
    assert found.forwards == {suite.FORWARD}        # its elements are all there
    hook.add_forward(forwards=[suite.FORWARD])
    assert hook.list_rules(project=suite.P1).jumps
    assert len(rules_of(netns, "LOCKER_PRE_alpha")) == 4


def test_cleanup_removes_the_projects_chains_and_maps(netns: NetNS) -> None:
    hook = new_manager(NftablesBackend()).hook
    hook.add_nat(bridges=[suite.BRIDGE1, suite.BRIDGE2])
    hook.add_forward(forwards=suite.FORWARDS1 + suite.FORWARDS2)
    hook.cleanup(project=suite.P1)
    names = {(i.get("chain") or i.get("map") or i.get("set") or {}).get("name")
             for i in listing(netns)}
    assert not {n for n in names if n and "alpha" in n}
    assert {"LOCKER_PRE_beta", "LOCKER_FWD_beta", "beta_dnat_addr"} <= names


class Recorder:
    """Counts the backend's reads and records what they name."""

    def __init__(self, monkeypatch) -> None:
        self.reads: list[list[dict]] = []
        self.runs: list[list[dict]] = []
        read, run, list_table = kernel.read, kernel.run, kernel.list_table
        rules_only = kernel.list_rules_only

        def recording_read(commands, what):
            self.reads.append(commands)
            return read(commands, what)

        def recording_run(commands, what, dry_run=False):
            self.runs.append(commands)
            return run(commands, what, dry_run)

        def recording_list_table(family="ip"):
            self.reads.append([{"list": {"table": f"{family} locker"}}])
            return list_table(family)

        def recording_rules_only(family="ip"):
            self.reads.append([{"list": {"rules of": f"{family} locker"}}])
            return rules_only(family)

        monkeypatch.setattr(kernel, "list_rules_only", recording_rules_only)
        monkeypatch.setattr(kernel, "read", recording_read)
        monkeypatch.setattr(kernel, "run", recording_run)
        monkeypatch.setattr(kernel, "list_table", recording_list_table)


def test_a_project_read_lists_only_its_own_elements(netns, monkeypatch) -> None:
    hook = new_manager(NftablesBackend()).hook
    hook.add_forward(forwards=suite.FORWARDS1 + suite.FORWARDS2)
    recorder = Recorder(monkeypatch)
    assert hook.list_rules(project=suite.P1) == suite.expected(forwards=suite.FORWARDS1)
    rules_only, stores, rules6 = recorder.reads   # no ip6 table: none of its stores
    assert rules_only == [{"list": {"rules of": "ip locker"}}]
    assert rules6 == [{"list": {"rules of": "ip6 locker"}}]
    named = json.dumps(stores)
    assert "beta" not in named and len(stores) == 14
    assert all(set(c["list"]) <= {"map", "set"} for c in stores)


def test_one_read_serves_the_hooks_of_a_command(netns, monkeypatch) -> None:
    """What list_rules read is what the changing hooks of the same project
    work on, in the order the core calls them (``network.apply``: removals
    first) after calling list_rules first under its host lock."""
    backend = NftablesBackend()
    hook = new_manager(backend).hook
    hook.add_forward(forwards=suite.FORWARDS2)
    hook.add_link(links=suite.LINKS1[1:])
    recorder = Recorder(monkeypatch)
    hook.list_rules(project=suite.P1)
    hook.remove_unrecognised(project=suite.P1)
    hook.remove_forward(forwards=suite.FORWARDS1[:1])
    hook.remove_link(links=suite.LINKS1[1:])
    hook.add_nat(bridges=[suite.BRIDGE1])
    hook.add_forward(forwards=suite.FORWARDS1)
    hook.add_link(links=suite.LINKS1[:1])
    # the rules, then alpha's stores; the rules of the ip6 table (none there)
    assert len(recorder.reads) == 3, recorder.reads
    assert hook.list_rules(project=suite.P1) == suite.expected(
        nat={suite.BRIDGE1}, forwards=suite.FORWARDS1, links=suite.LINKS1[:1])
    assert len(recorder.reads) == 6
    hook.add_forward(forwards=suite.FORWARDS2)   # another project: reads for itself
    assert len(recorder.reads) == 9


def test_a_stale_view_fails_safe(netns, monkeypatch) -> None:
    """A view that no longer matches the kernel (someone changed it outside
    the host lock) makes a transaction fail: it is retried on a fresh read."""
    hook = new_manager(NftablesBackend()).hook
    hook.add_link(links=suite.LINKS1)
    hook.list_rules(project=suite.P1)
    netns.run(["nft", "flush", "chain", "ip", "locker", "LOCKER_FWD_alpha"])
    hook.remove_link(links=suite.LINKS1[:1])
    assert hook.list_rules(project=suite.P1).links == frozenset()


def test_availability_probe_lists_no_table(netns, monkeypatch) -> None:
    hook = new_manager(NftablesBackend()).hook
    hook.add_forward(forwards=suite.FORWARDS1)
    recorder = Recorder(monkeypatch)
    assert hook.firewall_availability().usable
    assert recorder.reads == []
    listings = [c["list"] for batch in recorder.runs for c in batch if "list" in c]
    assert listings == [{"flowtables": {"family": "netdev"}}]


def test_rules_are_read_without_elements_and_without_other_tables(netns: NetNS) -> None:
    """The read of the rules asks libnftables for a terse ``list ruleset ip``
    (no element of any set is fetched) and keeps only Locker's table."""
    hook = new_manager(NftablesBackend()).hook
    hook.add_forward(forwards=suite.FORWARDS1)
    netns.run(["nft", "-f", "-"], input="table ip other {\n chain c {\n  tcp dport 1 accept\n }\n}\n")
    found = kernel.list_rules_only()
    assert found and all(next(iter(i.values())).get("table") == "locker" for i in found)
    stores = [i.get("map") or i.get("set") for i in found if "map" in i or "set" in i]
    assert len(stores) == 14 and not any("elem" in s for s in stores)
    assert any("rule" in i and i["rule"]["chain"] == "LOCKER_PRE_alpha" for i in found)
    netns.run(["nft", "delete", "table", "ip", "locker"])
    assert kernel.list_rules_only() is None
