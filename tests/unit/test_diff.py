"""The diff: every item of a project with its status, and the repair that
brings them in place. Pure functions, so every case is a table row."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from locker import diff, planner
from locker.diff import (BLOCKED, CHAINS, FORWARD, IN_PLACE, LINK, MISSING, NAT, ORPHAN,
                         PARTIAL, RULE, STALE, Found)
from locker.model import Blocker, Bridge, BridgeState, Forward, Link, Ruleset, TaggedRule
from locker.project import ContainerSpec, LinkSpec, PortSpec, Project
from locker.state import ProjectRecord

IP = IPv4Address
SHOP = Project("shop", Path("/srv/shop/locker.yaml"), (
    ContainerSpec("web", ports=(PortSpec(8080, 80), PortSpec(5353, 53, "udp", IP("192.0.2.10"))),
                  links=(LinkSpec("db", "database"),)),
    ContainerSpec("db", ports=(PortSpec(5432, 5432),)),
    ContainerSpec("cache", links=(LinkSpec("db"),)),
))
ADDRS = {"web": IP("10.1.1.2"), "db": IP("10.1.1.3"), "cache": IP("10.1.1.4")}
BRIDGE = Bridge("shop", "locker_shop", IPv4Network("10.1.1.0/24"))
UP = BridgeState("locker_shop", (IPv4Interface("10.1.1.1/24"),), True)
WEB_8080 = Forward("shop", "web", 8080, IP("10.1.1.2"), 80)
WEB_5353 = Forward("shop", "web", 5353, IP("10.1.1.2"), 53, "udp", IP("192.0.2.10"))
DB_5432 = Forward("shop", "db", 5432, IP("10.1.1.3"), 5432)
WEB_DB = Link("shop", "web", IP("10.1.1.2"), "db", IP("10.1.1.3"))
CACHE_DB = Link("shop", "cache", IP("10.1.1.4"), "db", IP("10.1.1.3"))
ALL_RUNNING = {"web", "db", "cache"}


def wanted(running=ALL_RUNNING, addresses=ADDRS, bridge=BRIDGE) -> diff.Wanted:
    return diff.wanted(SHOP, bridge, addresses, running)


def whole(**changes) -> Ruleset:
    """Everything the running project wants, in place."""
    values = dict(nat=frozenset({BRIDGE}), forwards=frozenset({WEB_8080, WEB_5353, DB_5432}),
                  links=frozenset({WEB_DB, CACHE_DB}), jumps=True)
    values.update(changes)
    return Ruleset(**values)


def statuses(result: diff.Diff, kind: str) -> dict:
    return {item.value: item.status for item in result.of(kind)}


# ------------------------------------------------------------------ wanted

def test_forwards_only_for_running_containers_with_an_address() -> None:
    got = diff.wanted(SHOP, BRIDGE, {"web": IP("10.1.1.2")}, {"web", "db"})
    assert got.forwards == {WEB_8080, WEB_5353}
    assert diff.wanted(SHOP, BRIDGE, ADDRS, set()).forwards == frozenset()


def test_links_only_when_both_ends_run_and_have_addresses() -> None:
    assert wanted({"web", "cache"}).links == frozenset()
    assert wanted({"web", "db"}).links == {WEB_DB}
    assert wanted().links == {WEB_DB, CACHE_DB}
    assert wanted({"web", "db"}, {"web": IP("10.1.1.2")}).links == frozenset()


# ----------------------------------------------------------------- statuses

def test_everything_in_place() -> None:
    result = diff.diff(SHOP, wanted(), Found(UP, whole()), ALL_RUNNING)
    assert result.differences == ()
    assert {i.kind for i in result.items} == {"bridge", CHAINS, NAT, FORWARD, LINK}


def test_a_missing_jump_is_a_partial_chains_item_even_when_every_rule_is_there() -> None:
    rules = whole(jumps=False, entry_missing=("jump from PREROUTING to LOCKER_PREROUTING",))
    result = diff.diff(SHOP, wanted(), Found(UP, rules), ALL_RUNNING)
    [item] = result.differences
    assert (item.kind, item.status, item.value) == (
        CHAINS, PARTIAL, "jump from PREROUTING to LOCKER_PREROUTING")
    assert item.fix == "locker ports"


def test_no_chains_at_all_is_missing_once_anything_is_wanted() -> None:
    result = diff.diff(SHOP, wanted(), Found(UP, Ruleset()), ALL_RUNNING)
    assert [i.status for i in result.of(CHAINS)] == [MISSING]
    nothing = diff.diff(SHOP, wanted(set(), bridge=None), Found(None, Ruleset()))
    assert nothing.items == ()


def test_a_forward_half_there_is_partial_and_one_nobody_wants_is_stale() -> None:
    rules = whole(forwards=frozenset({WEB_5353}), partial=frozenset({WEB_8080, DB_5432}))
    result = diff.diff(SHOP, wanted({"web", "cache"}), Found(UP, rules), {"web", "cache"})
    assert statuses(result, FORWARD) == {WEB_8080: PARTIAL, WEB_5353: IN_PLACE, DB_5432: STALE}
    stale = next(i for i in result.of(FORWARD) if i.status == STALE)
    assert stale.reason == "partly there and db does not run"


def test_a_port_changed_in_the_file_is_one_stale_and_one_missing_forward() -> None:
    moved = Forward("shop", "web", 8081, IP("10.1.1.2"), 80)
    rules = whole(forwards=frozenset({moved, WEB_5353, DB_5432}))
    result = diff.diff(SHOP, wanted(), Found(UP, rules), ALL_RUNNING)
    assert statuses(result, FORWARD)[moved] == STALE
    assert statuses(result, FORWARD)[WEB_8080] == MISSING


def test_the_rules_of_a_container_gone_from_the_file_are_stale_and_it_is_an_orphan() -> None:
    gone = Forward("shop", "old", 9090, IP("10.1.1.9"), 90)
    rules = whole(forwards=frozenset({WEB_8080, WEB_5353, DB_5432, gone}))
    result = diff.diff(SHOP, wanted(), Found(UP, rules, orphans=("old",)), ALL_RUNNING)
    item = next(i for i in result.of(FORWARD) if i.value == gone)
    assert (item.status, item.subject, item.reason) == (STALE, "old",
                                                        "old is not in the project file")
    [orphan] = result.of("container")
    assert (orphan.status, orphan.value) == (ORPHAN, "old")


def test_an_altered_rule_with_lockers_tag_is_stale() -> None:
    altered = TaggedRule("shop", "locker:shop:web:dnat", "ip locker LOCKER_PREROUTING",
                         "tcp dport 8080 drop")
    result = diff.diff(SHOP, wanted(), Found(UP, whole(unrecognised=(altered,))), ALL_RUNNING)
    [item] = result.differences
    assert (item.kind, item.status, item.subject) == (RULE, STALE, "web")


def test_forwards_in_place_behind_another_tools_drop_are_blocked() -> None:
    drop = Blocker("table inet filter, chain forward (policy drop)",
                   'nft insert rule inet filter forward iifname "locker_shop" accept')
    result = diff.diff(SHOP, wanted(), Found(UP, whole(), blockers=(drop,)), ALL_RUNNING)
    assert set(statuses(result, FORWARD).values()) == {BLOCKED}
    item = result.of(FORWARD)[0]
    assert item.fix == drop.fix and item.reason == drop.what
    assert set(statuses(result, LINK).values()) == {IN_PLACE}


def test_a_bridge_without_lockers_alias_and_a_down_bridge() -> None:
    foreign = BridgeState("locker_shop", (), True, owned=False)
    result = diff.diff(SHOP, wanted(set(), bridge=None), Found(foreign, Ruleset()))
    assert [(i.kind, i.status) for i in result.items] == [("bridge", STALE)]
    down = BridgeState("locker_shop", (IPv4Interface("10.1.1.1/24"),), False)
    result = diff.diff(SHOP, wanted(), Found(down, whole()), ALL_RUNNING)
    assert result.of("bridge")[0].status == PARTIAL


def test_network_rules_of_an_old_subnet_are_stale() -> None:
    old = Bridge("shop", "locker_shop", IPv4Network("10.1.7.0/24"))
    result = diff.diff(SHOP, wanted(), Found(UP, whole(nat=frozenset({old}))), ALL_RUNNING)
    assert statuses(result, NAT) == {BRIDGE: MISSING, old: STALE}
    assert result.of(NAT, STALE)[0].reason == "the bridge is locker_shop 10.1.1.0/24 now"


@pytest.mark.parametrize("isolated", [True, False])
def test_network_rules_isolated_otherwise_are_stale_and_say_so(isolated: bool) -> None:
    """Only ``isolated`` changed: the reason says that, not that the bridge
    is gone or has another subnet."""
    want = replace(BRIDGE, isolated=isolated)
    there = replace(BRIDGE, isolated=not isolated)
    result = diff.diff(SHOP, wanted(bridge=want), Found(UP, whole(nat=frozenset({there}))),
                       ALL_RUNNING)
    assert statuses(result, NAT) == {want: MISSING, there: STALE}
    setting = "true" if isolated else "false"
    assert result.of(NAT, STALE)[0].reason == (
        f"the project is {'' if isolated else 'not '}isolated now (isolated: {setting})")


# ------------------------------------------------------------------ repair

def test_repair_removes_stale_and_adds_missing_and_partial() -> None:
    moved = Forward("shop", "web", 8081, IP("10.1.1.2"), 80)
    rules = whole(forwards=frozenset({moved}), partial=frozenset({WEB_5353}),
                  links=frozenset())
    result = diff.diff(SHOP, wanted(), Found(UP, rules), ALL_RUNNING)
    plan = diff.repair(result, {FORWARD})
    assert plan.remove_forwards == (moved,)
    assert set(plan.add_forwards) == {WEB_8080, WEB_5353, DB_5432}
    assert plan.add_links == () and plan.add_nat == ()


def test_repair_of_some_containers_leaves_the_others() -> None:
    result = diff.diff(SHOP, wanted(), Found(UP, whole(forwards=frozenset(), links=frozenset())),
                       ALL_RUNNING)
    plan = diff.repair(result, {FORWARD, LINK}, ["db"])
    assert plan.add_forwards == (DB_5432,)
    assert set(plan.add_links) == {WEB_DB, CACHE_DB}  # links ending at db count too


def test_repairing_the_chains_goes_through_add_nat() -> None:
    rules = whole(jumps=False, entry_missing=("chain LOCKER_FORWARD",))
    result = diff.diff(SHOP, wanted(), Found(UP, rules), ALL_RUNNING)
    plan = diff.repair(result, {FORWARD, CHAINS}, bridge=BRIDGE)
    assert (plan.entry, plan.entry_bridge, plan.add_nat) == (PARTIAL, BRIDGE, ())


def test_repair_removes_unrecognised_rules_and_nothing_in_place() -> None:
    altered = TaggedRule("shop", "locker:shop:web:dnat", "x", "y")
    result = diff.diff(SHOP, wanted(), Found(UP, whole(unrecognised=(altered,))), ALL_RUNNING)
    plan = diff.repair(result, {FORWARD, RULE})
    assert plan.remove_unrecognised and plan.unrecognised == (altered,)
    assert not diff.repair(diff.diff(SHOP, wanted(), Found(UP, whole()), ALL_RUNNING),
                           {FORWARD, LINK, NAT, CHAINS, RULE})


def test_removal_takes_partial_values_too() -> None:
    rules = whole(partial=frozenset({Forward("shop", "db", 1, IP("10.1.1.3"), 1)}))
    plan = diff.removal(rules, ["db"])
    assert set(plan.remove_forwards) == {DB_5432, Forward("shop", "db", 1, IP("10.1.1.3"), 1)}
    assert set(plan.remove_links) == {WEB_DB, CACHE_DB}


# ------------------------------------------------------------ port conflicts

@pytest.mark.parametrize(("theirs", "clash"), [
    (Forward("blog", "web", 8080, IP("10.1.2.2"), 80), True),
    (Forward("blog", "web", 8080, IP("10.1.2.2"), 80, "udp"), False),
    (Forward("blog", "web", 8080, IP("10.1.2.2"), 80, "tcp", IP("192.0.2.99")), True),
    (Forward("blog", "web", 5353, IP("10.1.2.2"), 53, "udp", IP("192.0.2.11")), False),
    (Forward("blog", "web", 5353, IP("10.1.2.2"), 53, "udp"), True),
    (Forward("blog", "web", 8070, IP("10.1.2.2"), 80, count=11), True),
    (Forward("blog", "web", 8070, IP("10.1.2.2"), 80, count=10), False),
    (Forward("blog", "web", 8081, IP("10.1.2.2"), 80, count=100), False),
    (Forward("blog", "web", 8000, IP("10.1.2.2"), 80, count=100), True),
])
def test_a_host_port_another_project_forwards_is_a_conflict(theirs: Forward, clash: bool) -> None:
    other = ProjectRecord("blog", "/srv/blog/locker.yaml", forwards=(theirs,))
    problems = planner.port_conflicts(SHOP, SHOP.container_names, [other])
    assert bool(problems) == clash
    if clash:
        assert "project blog (/srv/blog/locker.yaml)" in problems[0]
        assert "its container web" in problems[0]
        assert problems[0].startswith("/srv/shop/locker.yaml: web: port ")


def test_restoring_a_jump_does_not_claim_to_add_network_rules_in_place() -> None:
    rules = whole(jumps=False, entry_missing=("jump from PREROUTING to LOCKER_PREROUTING",))
    result = diff.diff(SHOP, wanted(), Found(UP, rules), ALL_RUNNING)
    plan = diff.repair(result, {FORWARD, CHAINS, RULE}, bridge=BRIDGE)
    assert (plan.entry, plan.entry_bridge, plan.add_nat) == (PARTIAL, BRIDGE, ())
    assert plan


def test_a_forward_to_an_old_address_says_where_it_should_go() -> None:
    old = Forward("shop", "web", 8080, IP("10.1.1.9"), 80)
    rules = whole(forwards=frozenset({old, WEB_5353, DB_5432}))
    result = diff.diff(SHOP, wanted(), Found(UP, rules), ALL_RUNNING)
    item = next(i for i in result.of(FORWARD) if i.value == old)
    assert (item.status, item.reason) == (STALE, "it should go to 10.1.1.2:80")


def test_the_dns_forwarder_is_an_item_while_the_bridge_is_wanted() -> None:
    running = diff.diff(SHOP, wanted(), Found(UP, whole(), dns=True), ALL_RUNNING)
    assert [(i.kind, i.status) for i in running.of("dns")] == [("dns", IN_PLACE)]
    down = diff.diff(SHOP, wanted(), Found(UP, whole(), dns=False), ALL_RUNNING)
    assert [(i.status, i.fix) for i in down.of("dns")] == [(MISSING, "locker start")]
    assert diff.diff(SHOP, wanted(), Found(UP, whole(), dns=None), ALL_RUNNING).of("dns") == ()
