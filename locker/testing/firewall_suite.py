"""Conformance suite for Locker firewall backends.

Every firewall backend, built in or third-party, proves that it keeps the
contract of the *Firewall* hooks in ``locker.hookspecs`` by running this
suite against the real kernel. The plugin object is registered alone with
``locker.plugins.new_manager(plugin)`` and driven through
``manager.hook.<name>(...)`` with keyword arguments, exactly as the core
drives it.

How to use it (the whole test module of a backend)::

    import pytest
    from locker.testing.firewall_suite import FirewallBackendTests

    @pytest.mark.privileged
    class TestMyBackend(FirewallBackendTests):
        def make_backend(self):
            from locker_mine import MyBackend
            return MyBackend()

        def add_foreign_rules(self, netns):
            netns.run(["nft", "-f", "-"], input=FOREIGN_RULESET)

        def foreign_state(self, netns):
            return netns.run(["nft", "list", "table", "inet", "filter"]).stdout

        def locker_state(self, netns):
            return netns.run(["nft", "list", "table", "ip", "locker"], check=False).stdout

        def jump_counts(self, netns):
            return {"LOCKER_FORWARD": 1, ...}   # counted from the kernel

The interface a subclass provides (all methods, no constructor):

``make_backend() -> object`` (required)
    A new plugin object. Called once per test, after the test process has
    entered the test's network namespace, so a backend that opens kernel
    sockets in its constructor opens them there.
``add_foreign_rules(netns) -> None`` (required)
    Create another tool's table/chains/rules in ``netns`` (a
    ``locker.testing.netns.NetNS``), including rules attached to the same
    netfilter hooks Locker uses (prerouting, forward, postrouting).
``foreign_state(netns) -> str`` (required)
    A dump of everything in the kernel that is not Locker's. It is compared
    byte for byte before and after Locker's hooks run, so it must not hold
    packet counters or anything else that changes by itself.
``locker_state(netns) -> str`` (required)
    A dump of Locker's own rules, chains and jumps (no counters, no
    handles). Used to prove that a call changed nothing: adding twice,
    removing what is absent, empty batches, a failed batch.
``jump_counts(netns) -> Mapping[str, int]`` (required)
    For each of Locker's chains that is entered by a jump, how many jump
    rules (carrying ``locker.names.JUMP_COMMENT``) lead to it. Must hold at
    least ``LOCKER_FORWARD`` and ``LOCKER_PREROUTING`` once anything was
    added.
``delete_locker_rule(netns, comment, nth=0) -> None`` (required)
    Delete the ``nth`` rule (counting from 0, in the order Locker's chains
    list them) carrying the tag ``comment`` from Locker's chains, with the
    backend's independent tool (``nft``, ``iptables-legacy``), not with
    the backend.
``replace_with_dnat(netns, comment, forward, nth=0) -> None`` (required)
    Replace that rule in place by the DNAT rule ``add_forward([forward])``
    would write (same chain, same tag), written with the independent tool:
    a DNAT altered into another valid one.
``add_tagged_rule(netns, comment, chain) -> None`` (required)
    Append to ``chain`` (``LOCKER_FORWARD``, ``LOCKER_PREROUTING``) a rule
    with the tag ``comment`` and a shape Locker never writes (for example
    "tcp dport 99 accept").
``delete_jump(netns, chain) -> None`` / ``add_jump(netns, chain) -> None``
    (required) Delete Locker's jump into ``chain`` (``LOCKER_FORWARD``,
    ``LOCKER_PREROUTING``), or add a second, identical one.
``delete_chain(netns, chain) -> None`` (required)
    Delete Locker's chain ``chain`` with its rules and the jump into it.
``tag_counts(netns) -> Counter`` (optional)
    How many of Locker's rules or elements carry each tag, counted from
    the kernel with the backend's independent tool. The default counts
    the tags in ``locker_state``; a backend whose one rule is several
    kernel objects (a DNAT as an address and a port element) counts it
    once. Structural rules (tag purpose ``dispatch``: the jumps into a
    project's own chains, the lookups in its maps) are never counted.
``add_forward_drop(netns) -> None`` (required)
    Create another tool's base chain at the forward hook, where this
    backend's ``find_blockers`` looks, that drops forwarded traffic by
    policy (for nftables and iptables-nft alike: a table of its own in
    ``inet`` with ``policy drop``). The blocker's ``fix`` is then run
    with ``sh -c`` in the namespace.
``failing_batch(backend) -> ContextManager`` (optional)
    While the context is active, the backend's next kernel transaction
    must fail inside the kernel or its library *after* some of its commands
    were accepted (for example: an invalid command appended at the end of
    the batch). The default skips the test that uses it: the public hooks
    alone offer no way to make a valid batch fail midway. The suite also
    checks, through the public hooks only, that a batch holding an invalid
    value after valid ones raises ``BackendError`` and changes nothing.

The whole suite runs in the ``netns`` fixture (a fresh network namespace
per test, from ``locker.testing.pytest_plugin``): it skips without root.

The suite is about rules, not traffic: every check reads the kernel's rules
back (through ``list_rules`` and the subclass's dumps; ``locker_state``
must show each rule's tag, which the suite counts, and each DNAT's
destination as ``ADDRESS:PORT``). The host's firewalld
and ufw are out of the namespace: the suite replaces
``locker.blockers.host_firewalls`` by one that finds neither. No bridge,
interface or container is created, and no packet is sent; a rule that
matches on ``iifname`` does not need the interface to exist. That traffic
really flows through the rules is the end-to-end tests' job.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractContextManager, suppress
from ipaddress import IPv4Address, IPv4Network

import pytest

from locker.errors import BackendError
from locker.model import Availability, Blocker, Bridge, Forward, Link, Ruleset
from locker.names import Tag, bridge_name
from locker.pieces import nat_keys
from locker.plugins import new_manager
from locker.testing.netns import NetNS

P1, P2 = "alpha", "beta"


def bridge(project: str, third_octet: int) -> Bridge:
    return Bridge(project, bridge_name(project), IPv4Network(f"10.1.{third_octet}.0/24"))


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


#: Bridges of two projects.
BRIDGE1 = bridge(P1, 1)
BRIDGE2 = bridge(P2, 2)

#: Forwards of project P1: with and without host_ip, tcp and udp, and two
#: that differ only in host_ip, and two to the same container port.
FORWARDS1 = (
    Forward(P1, "web", 8080, ip("10.1.1.2"), 80),
    Forward(P1, "web", 8443, ip("10.1.1.2"), 443, "tcp", ip("192.0.2.10")),
    Forward(P1, "web", 8081, ip("10.1.1.2"), 80),
    Forward(P1, "dns", 5353, ip("10.1.1.3"), 53, "udp"),
    Forward(P1, "dns", 5353, ip("10.1.1.3"), 53, "udp", ip("192.0.2.10")),
    Forward(P1, "dns", 5353, ip("10.1.1.3"), 53, "tcp"),
)
FORWARDS2 = (
    Forward(P2, "web", 9080, ip("10.1.2.2"), 80),
    Forward(P2, "db", 5432, ip("10.1.2.3"), 5432, "tcp", ip("192.0.2.11")),
)
LINKS1 = (
    Link(P1, "web", ip("10.1.1.2"), "dns", ip("10.1.1.3")),
    Link(P1, "web", ip("10.1.1.2"), "db", ip("10.1.1.4")),
)
LINKS2 = (Link(P2, "web", ip("10.1.2.2"), "db", ip("10.1.2.3")),)

HOOKS = ("add_nat", "remove_nat", "add_forward", "remove_forward", "add_link", "remove_link")

#: A forward with a host address, whose two rules are the only ones with
#: their tags in the tests that break rules.
FORWARD = FORWARDS1[1]
LINK = LINKS1[0]
TAG_PATTERN = re.compile(r"locker(?::[A-Za-z0-9-]+)+")


def tag(value: Forward | Link, purpose: str) -> str:
    peer = getattr(value, "peer", None)
    return str(Tag(value.project, purpose, value.container, peer))


def nat_tag(project: str, purpose: str) -> str:
    return str(Tag(project, purpose))


class FirewallBackendTests:
    """The conformance tests; see the module docstring for how to subclass."""

    # ------------------------------------------------ the subclass interface

    def make_backend(self) -> object:
        raise NotImplementedError("the subclass returns the plugin object")

    def add_foreign_rules(self, netns: NetNS) -> None:
        raise NotImplementedError

    def foreign_state(self, netns: NetNS) -> str:
        raise NotImplementedError

    def locker_state(self, netns: NetNS) -> str:
        raise NotImplementedError

    def jump_counts(self, netns: NetNS) -> Mapping[str, int]:
        raise NotImplementedError

    def delete_locker_rule(self, netns: NetNS, comment: str, nth: int = 0) -> None:
        raise NotImplementedError

    def replace_with_dnat(self, netns: NetNS, comment: str, forward: Forward,
                          nth: int = 0) -> None:
        raise NotImplementedError

    def add_tagged_rule(self, netns: NetNS, comment: str, chain: str) -> None:
        raise NotImplementedError

    def delete_jump(self, netns: NetNS, chain: str) -> None:
        raise NotImplementedError

    def add_jump(self, netns: NetNS, chain: str) -> None:
        raise NotImplementedError

    def delete_chain(self, netns: NetNS, chain: str) -> None:
        raise NotImplementedError

    def add_forward_drop(self, netns: NetNS) -> None:
        raise NotImplementedError

    def failing_batch(self, backend: object) -> AbstractContextManager[None]:
        pytest.skip("this backend offers no fault injection: a valid batch "
                    "cannot be made to fail midway through the public hooks")

    # ------------------------------------------------------------- fixtures

    @pytest.fixture(autouse=True)
    def no_host_firewalls(self, monkeypatch) -> None:
        """firewalld and ufw run in the machine's namespace, not the test's:
        ``locker.blockers.host_firewalls`` sees none of them here (their
        checks have unit tests of their own)."""
        from locker import blockers
        monkeypatch.setattr(blockers, "host_firewalls",
                            lambda bridges, *args, **kwargs: blockers.HostFirewalls())

    @pytest.fixture
    def backend(self, netns: NetNS) -> object:
        return self.make_backend()

    @pytest.fixture
    def hook(self, backend: object):
        return new_manager(backend).hook

    @pytest.fixture
    def populated(self, hook) -> Ruleset:
        """Two projects' nat, forwards and links in the kernel."""
        hook.add_nat(bridges=[BRIDGE1, BRIDGE2])
        hook.add_forward(forwards=FORWARDS1 + FORWARDS2)
        hook.add_link(links=LINKS1 + LINKS2)
        return expected(nat={BRIDGE1, BRIDGE2}, forwards=FORWARDS1 + FORWARDS2,
                        links=LINKS1 + LINKS2)

    # ----------------------------------------------------------------- tests

    def test_availability_is_usable(self, hook) -> None:
        availability = hook.firewall_availability()
        assert isinstance(availability, Availability)
        assert availability.usable, availability.reason
        assert availability.reason.strip()

    def test_empty_kernel_lists_nothing(self, hook) -> None:
        assert hook.list_rules(project=None) == Ruleset()

    def test_nat_lists_back(self, hook) -> None:
        hook.add_nat(bridges=[BRIDGE1])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1})

    def test_forwards_list_back(self, hook) -> None:
        hook.add_forward(forwards=FORWARDS1)
        assert hook.list_rules(project=None) == expected(forwards=FORWARDS1)

    def test_links_list_back(self, hook) -> None:
        hook.add_link(links=LINKS1)
        assert hook.list_rules(project=None) == expected(links=LINKS1)

    def test_everything_lists_back(self, hook, populated) -> None:
        assert hook.list_rules(project=None) == populated

    def test_list_rules_filters_by_project(self, hook, populated) -> None:
        assert hook.list_rules(project=P1) == populated.of_project(P1)
        assert hook.list_rules(project=P2) == populated.of_project(P2)
        assert hook.list_rules(project="gamma") == Ruleset(jumps=True)

    def test_adding_twice_changes_nothing(self, hook, populated, netns) -> None:
        before = self.locker_state(netns)
        hook.add_nat(bridges=[BRIDGE1, BRIDGE2])
        hook.add_forward(forwards=FORWARDS1 + FORWARDS2)
        hook.add_link(links=LINKS1 + LINKS2)
        assert self.locker_state(netns) == before
        assert hook.list_rules(project=None) == populated

    def test_duplicates_within_one_batch_add_once(self, hook, netns) -> None:
        hook.add_forward(forwards=FORWARDS1[:1])
        hook.add_link(links=LINKS1[:1])
        once = self.locker_state(netns)
        hook.add_forward(forwards=FORWARDS1[:1] * 3)
        hook.add_link(links=LINKS1[:1] * 3)
        assert self.locker_state(netns) == once

    def test_removing_absent_changes_nothing(self, hook, netns) -> None:
        hook.remove_forward(forwards=FORWARDS1)
        hook.remove_link(links=LINKS1)
        hook.cleanup(project=P1)
        assert hook.list_rules(project=None).forwards == frozenset()
        hook.add_forward(forwards=FORWARDS2)
        hook.add_link(links=LINKS2)
        before = self.locker_state(netns)
        hook.remove_forward(forwards=FORWARDS1)
        hook.remove_link(links=LINKS1)
        hook.cleanup(project=P1)
        assert self.locker_state(netns) == before

    def test_remove_forwards_removes_exactly_those(self, hook, populated) -> None:
        gone = (FORWARDS1[0], FORWARDS1[3], FORWARDS2[1])
        hook.remove_forward(forwards=gone)
        kept = [f for f in FORWARDS1 + FORWARDS2 if f not in gone]
        assert hook.list_rules(project=None) == expected(
            nat={BRIDGE1, BRIDGE2}, forwards=kept, links=LINKS1 + LINKS2)

    def test_remove_forward_twin_keeps_the_other(self, hook) -> None:
        # Same port and protocol, differing only in host_ip (or host_port).
        with_ip, without_ip = FORWARDS1[4], FORWARDS1[3]
        same_target = FORWARDS1[2]
        hook.add_forward(forwards=[with_ip, without_ip, FORWARDS1[0], same_target])
        hook.remove_forward(forwards=[with_ip, same_target])
        assert hook.list_rules(project=None) == expected(
            forwards=[without_ip, FORWARDS1[0]])

    def test_remove_links_removes_exactly_those(self, hook, populated) -> None:
        hook.remove_link(links=LINKS1[:1])
        assert hook.list_rules(project=None) == expected(
            nat={BRIDGE1, BRIDGE2}, forwards=FORWARDS1 + FORWARDS2,
            links=LINKS1[1:] + LINKS2)

    def test_remove_then_add_again(self, hook, populated) -> None:
        hook.remove_forward(forwards=FORWARDS1)
        hook.remove_link(links=LINKS1)
        hook.add_forward(forwards=FORWARDS1)
        hook.add_link(links=LINKS1)
        assert hook.list_rules(project=None) == populated

    def test_empty_batches_do_nothing(self, hook, netns) -> None:
        self.add_foreign_rules(netns)
        foreign, mine = self.foreign_state(netns), self.locker_state(netns)
        for name in HOOKS:
            getattr(hook, name)(**{argument(name): []})
        assert self.locker_state(netns) == mine
        assert self.foreign_state(netns) == foreign
        assert hook.list_rules(project=None) == Ruleset()

    def test_empty_batches_do_nothing_when_populated(self, hook, populated, netns) -> None:
        before = self.locker_state(netns)
        for name in HOOKS:
            getattr(hook, name)(**{argument(name): []})
        assert self.locker_state(netns) == before

    def test_cleanup_removes_the_project_only(self, hook, populated, netns) -> None:
        hook.cleanup(project=P1)
        assert hook.list_rules(project=P1) == Ruleset(jumps=True)
        assert hook.list_rules(project=None) == populated.of_project(P2)
        self.assert_jumps_once(netns)

    def test_cleanup_twice_and_of_unknown_project(self, hook, populated, netns) -> None:
        hook.cleanup(project=P1)
        after = self.locker_state(netns)
        hook.cleanup(project=P1)
        hook.cleanup(project="gamma")
        assert self.locker_state(netns) == after

    def test_cleanup_then_add_again(self, hook, populated) -> None:
        hook.cleanup(project=P1)
        hook.cleanup(project=P2)
        assert hook.list_rules(project=None) == Ruleset(jumps=True)
        hook.add_nat(bridges=[BRIDGE1, BRIDGE2])
        hook.add_forward(forwards=FORWARDS1 + FORWARDS2)
        hook.add_link(links=LINKS1 + LINKS2)
        assert hook.list_rules(project=None) == populated

    def test_other_project_survives_everything(self, hook, populated) -> None:
        other = hook.list_rules(project=P2)
        assert other == populated.of_project(P2)
        hook.remove_forward(forwards=FORWARDS1)
        hook.remove_link(links=LINKS1)
        assert hook.list_rules(project=P2) == other
        hook.add_forward(forwards=FORWARDS1)
        hook.cleanup(project=P1)
        assert hook.list_rules(project=P2) == other

    def test_jumps_exist_once_after_many_calls(self, hook, netns) -> None:
        for _ in range(3):
            hook.add_nat(bridges=[BRIDGE1])
            hook.add_forward(forwards=FORWARDS1[:2])
            hook.add_link(links=LINKS1[:1])
            hook.add_nat(bridges=[BRIDGE2])
            hook.remove_forward(forwards=FORWARDS1[:1])
            hook.cleanup(project=P1)
        self.assert_jumps_once(netns)
        assert hook.list_rules(project=None).jumps

    def test_each_adding_hook_creates_chains_and_jumps(self, hook, netns) -> None:
        hook.add_link(links=LINKS1[:1])
        self.assert_jumps_once(netns)
        assert hook.list_rules(project=None).jumps

    def test_foreign_rules_stay_identical(self, hook, netns) -> None:
        self.add_foreign_rules(netns)
        foreign = self.foreign_state(netns)
        assert foreign.strip(), "foreign_state() shows nothing of add_foreign_rules()"
        steps = [
            lambda: hook.add_nat(bridges=[BRIDGE1, BRIDGE2]),
            lambda: hook.add_forward(forwards=FORWARDS1 + FORWARDS2),
            lambda: hook.add_link(links=LINKS1 + LINKS2),
            lambda: hook.list_rules(project=None),
            lambda: hook.remove_forward(forwards=FORWARDS1),
            lambda: hook.remove_link(links=LINKS1),
            lambda: hook.remove_unrecognised(project=P1),
            lambda: hook.find_blockers(bridges=[BRIDGE1, BRIDGE2]),
            lambda: hook.remove_nat(bridges=[BRIDGE1]),
            lambda: hook.cleanup(project=P1),
            lambda: hook.cleanup(project=P2),
            lambda: hook.firewall_availability(),
        ]
        for step in steps:
            step()
            assert self.foreign_state(netns) == foreign
        self.assert_jumps_once(netns)

    def test_foreign_rules_do_not_list(self, hook, netns) -> None:
        self.add_foreign_rules(netns)
        assert hook.list_rules(project=None) == Ruleset()
        hook.add_forward(forwards=FORWARDS1[:1])
        assert hook.list_rules(project=None) == expected(forwards=FORWARDS1[:1])

    @pytest.mark.parametrize("bad", [
        Forward(P1, "web", 8082, ip("10.1.1.2"), 80, "icmp"),
        Forward(P1, "web", 70000, ip("10.1.1.2"), 80),
        Forward(P1, "web", 8082, ip("10.1.1.2"), 0),
        Forward(P1, "we b", 8082, ip("10.1.1.2"), 80),
    ], ids=["protocol", "port-range", "port-zero", "name"])
    def test_bad_value_midway_changes_nothing(self, hook, populated, netns, bad) -> None:
        self.add_foreign_rules(netns)
        foreign, mine = self.foreign_state(netns), self.locker_state(netns)
        good = Forward(P1, "web", 8090, ip("10.1.1.2"), 90)
        with pytest.raises(BackendError):
            hook.add_forward(forwards=[good, bad, FORWARDS2[0]])
        with suppress(BackendError):  # refusing or ignoring it are both fine
            hook.remove_forward(forwards=[FORWARDS1[0], bad])
        assert self.locker_state(netns) == mine
        assert self.foreign_state(netns) == foreign
        assert hook.list_rules(project=None) == populated

    def test_failed_batch_leaves_kernel_unchanged(self, hook, backend, populated, netns) -> None:
        self.add_foreign_rules(netns)
        foreign, mine = self.foreign_state(netns), self.locker_state(netns)
        batches = [
            lambda: hook.add_forward(forwards=[Forward(P1, "web", 8090, ip("10.1.1.2"), 90)]),
            lambda: hook.add_link(links=[Link(P1, "web", ip("10.1.1.2"), "cache", ip("10.1.1.9"))]),
            lambda: hook.add_nat(bridges=[bridge("gamma", 3)]),
            lambda: hook.remove_forward(forwards=FORWARDS1),
            lambda: hook.remove_link(links=LINKS1),
            lambda: hook.cleanup(project=P1),
        ]
        for batch in batches:
            with self.failing_batch(backend), pytest.raises(BackendError):
                batch()
            assert self.locker_state(netns) == mine
            assert self.foreign_state(netns) == foreign
        assert hook.list_rules(project=None) == populated


    # ------------------------------------------------ partial values (diff)

    @pytest.mark.parametrize("half", ["dnat", "forward"])
    def test_half_a_forward_is_partial_and_add_completes_it(self, hook, netns, half) -> None:
        hook.add_forward(forwards=[FORWARD])
        self.delete_locker_rule(netns, tag(FORWARD, half))
        assert hook.list_rules(project=None) == Ruleset(jumps=True, partial=frozenset({FORWARD}))
        hook.add_forward(forwards=[FORWARD])
        assert hook.list_rules(project=None) == expected(forwards=[FORWARD])
        assert self.tag_counts(netns) == {tag(FORWARD, "dnat"): 1, tag(FORWARD, "forward"): 1}

    @pytest.mark.parametrize("half", ["dnat", "forward"])
    def test_half_a_forward_is_partial_and_removed(self, hook, netns, half) -> None:
        hook.add_forward(forwards=[FORWARD, FORWARDS2[0]])
        self.delete_locker_rule(netns, tag(FORWARD, half))
        assert hook.list_rules(project=P1) == Ruleset(jumps=True, partial=frozenset({FORWARD}))
        hook.remove_forward(forwards=[FORWARD])
        assert hook.list_rules(project=None) == expected(forwards=[FORWARDS2[0]])
        assert self.tag_counts(netns).keys() == {tag(FORWARDS2[0], "dnat"),
                                                tag(FORWARDS2[0], "forward")}

    @pytest.mark.parametrize("direction", ["link", "link-back"])
    def test_one_direction_of_a_link_is_partial_and_completed(self, hook, netns,
                                                              direction) -> None:
        hook.add_link(links=[LINK])
        self.delete_locker_rule(netns, tag(LINK, direction))
        assert hook.list_rules(project=None) == Ruleset(jumps=True, partial=frozenset({LINK}))
        hook.add_link(links=[LINK])
        assert hook.list_rules(project=None) == expected(links=[LINK])
        assert self.tag_counts(netns) == {tag(LINK, "link"): 1, tag(LINK, "link-back"): 1}

    @pytest.mark.parametrize("direction", ["link", "link-back"])
    def test_one_direction_of_a_link_is_partial_and_removed(self, hook, netns,
                                                            direction) -> None:
        hook.add_link(links=[LINK])
        self.delete_locker_rule(netns, tag(LINK, direction))
        assert hook.list_rules(project=P1).partial == {LINK}
        hook.remove_link(links=[LINK])
        assert hook.list_rules(project=None) == Ruleset(jumps=True)
        assert self.tag_counts(netns) == {}

    @pytest.mark.parametrize("purpose", ["masquerade", "outbound", "replies"])
    def test_partial_nat_is_listed_completed_and_removed(self, hook, netns, purpose) -> None:
        hook.add_nat(bridges=[BRIDGE1, BRIDGE2])
        self.delete_locker_rule(netns, nat_tag(P1, purpose))
        rebuilt = Bridge(P1, BRIDGE1.name, BRIDGE1.network)  # hairpin names the network too
        assert hook.list_rules(project=None) == Ruleset(
            nat=frozenset({BRIDGE2}), jumps=True, partial=frozenset({rebuilt}))
        assert hook.list_rules(project=P2) == expected(nat={BRIDGE2})
        if purpose != "masquerade":
            hook.add_nat(bridges=[rebuilt])    # the repair of a partial value
            assert hook.list_rules(project=None) == expected(nat={BRIDGE1, BRIDGE2})
            assert self.tag_counts(netns)[nat_tag(P1, purpose)] == 1
            self.delete_locker_rule(netns, nat_tag(P1, purpose))
        hook.remove_nat(bridges=[rebuilt])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE2})
        assert not any(t.startswith(f"locker:{P1}:") for t in self.tag_counts(netns))
        hook.add_nat(bridges=[BRIDGE1])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1, BRIDGE2})

    def test_remove_nat_removes_exactly_those(self, hook, populated, netns) -> None:
        hook.remove_nat(bridges=[BRIDGE1])
        assert hook.list_rules(project=None) == expected(
            nat={BRIDGE2}, forwards=FORWARDS1 + FORWARDS2, links=LINKS1 + LINKS2)
        counts = self.tag_counts(netns)
        assert not {nat_tag(P1, p) for p in ("masquerade", "outbound", "replies")} & counts.keys()
        assert {nat_tag(P2, p) for p in ("masquerade", "outbound", "replies")} <= counts.keys()

    def test_remove_nat_of_the_old_network_keeps_the_new_one(self, hook, netns) -> None:
        """A bridge moved to another subnet: the old network's masquerade
        goes, the outbound and replies rules, which the new network's
        bridge has too (same name), stay."""
        moved = Bridge(P1, BRIDGE1.name, IPv4Network("10.1.9.0/24"))
        hook.add_nat(bridges=[BRIDGE1])
        before = self.locker_state(netns)
        hook.remove_nat(bridges=[moved])     # not there: nothing changes
        assert self.locker_state(netns) == before
        hook.add_nat(bridges=[moved])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1, moved})
        hook.remove_nat(bridges=[BRIDGE1])
        assert hook.list_rules(project=None) == expected(nat={moved})
        assert self.tag_counts(netns) == {nat_tag(P1, k[0]): 1 for k in nat_keys(moved)}

    def test_altered_dnat_is_two_partial_forwards_and_repairs(self, hook, netns) -> None:
        wanted = Forward(P1, "web", 8080, ip("10.1.1.2"), 80)
        altered = Forward(P1, "web", 8080, ip("10.1.1.2"), 81)
        hook.add_forward(forwards=[wanted])
        self.replace_with_dnat(netns, tag(wanted, "dnat"), altered)
        assert hook.list_rules(project=None) == Ruleset(
            jumps=True, partial=frozenset({wanted, altered}))
        hook.remove_forward(forwards=[altered])      # the repair: stale first ...
        assert hook.list_rules(project=None) == Ruleset(jumps=True, partial=frozenset({wanted}))
        assert self.tag_counts(netns) == {tag(wanted, "forward"): 1}
        hook.add_forward(forwards=[wanted])          # ... then what is missing
        assert hook.list_rules(project=None) == expected(forwards=[wanted])
        state = self.locker_state(netns)
        assert "10.1.1.2:80" in state and "10.1.1.2:81" not in state
        assert self.tag_counts(netns) == {tag(wanted, "dnat"): 1, tag(wanted, "forward"): 1}

    # -------------------------------------------------- unrecognised rules

    def test_unparseable_tagged_rules_are_unrecognised(self, hook, populated, netns) -> None:
        self.add_tagged_rule(netns, tag(FORWARD, "forward"), "LOCKER_FORWARD")
        self.add_tagged_rule(netns, tag(FORWARD, "dnat"), "LOCKER_FORWARD")  # wrong chain
        self.add_tagged_rule(netns, nat_tag(P2, "outbound"), "LOCKER_PREROUTING")
        found = hook.list_rules(project=None)
        assert sorted(r.comment for r in found.unrecognised) == sorted(
            [tag(FORWARD, "forward"), tag(FORWARD, "dnat"), nat_tag(P2, "outbound")])
        assert all(r.project == Tag.parse(r.comment).project and r.location and r.text
                   for r in found.unrecognised)
        assert {r.project for r in hook.list_rules(project=P1).unrecognised} == {P1}
        assert len(hook.list_rules(project=P2).unrecognised) == 1
        assert found == Ruleset(nat=populated.nat, forwards=populated.forwards,
                                links=populated.links, jumps=True,
                                unrecognised=found.unrecognised)

    def test_remove_unrecognised_removes_exactly_those(self, hook, populated, netns) -> None:
        self.add_foreign_rules(netns)
        foreign, mine = self.foreign_state(netns), self.locker_state(netns)
        hook.remove_unrecognised(project=P1)       # none there: nothing changes
        assert self.locker_state(netns) == mine
        before = self.tag_counts(netns)
        self.add_tagged_rule(netns, tag(FORWARD, "forward"), "LOCKER_FORWARD")
        self.add_tagged_rule(netns, tag(FORWARD, "dnat"), "LOCKER_PREROUTING")
        self.add_tagged_rule(netns, nat_tag(P2, "outbound"), "LOCKER_FORWARD")
        hook.remove_unrecognised(project=P1)
        assert hook.list_rules(project=P1) == populated.of_project(P1)
        assert [r.comment for r in hook.list_rules(project=None).unrecognised] == [
            nat_tag(P2, "outbound")]
        assert self.tag_counts(netns) == before + Counter({nat_tag(P2, "outbound"): 1})
        assert self.foreign_state(netns) == foreign
        hook.remove_unrecognised(project=P2)
        assert hook.list_rules(project=None) == populated
        assert self.tag_counts(netns) == before
        hook.remove_unrecognised(project="gamma")
        assert self.locker_state(netns) == mine

    # ------------------------------------------------ Locker's entry chains

    @pytest.mark.parametrize("chain", ["LOCKER_FORWARD", "LOCKER_PREROUTING"])
    def test_missing_jump_is_named_and_add_nat_restores_it(self, hook, netns, chain) -> None:
        hook.add_nat(bridges=[BRIDGE1])
        hook.add_forward(forwards=[FORWARD])
        self.delete_jump(netns, chain)
        found = hook.list_rules(project=None)
        assert not found.jumps
        assert [p for p in found.entry_missing if chain in p] and all(
            "jump" in p for p in found.entry_missing), found.entry_missing
        assert found.forwards == {FORWARD} and found.nat == {BRIDGE1}
        assert hook.list_rules(project=P1).entry_missing == found.entry_missing
        hook.add_nat(bridges=[BRIDGE1])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1}, forwards=[FORWARD])
        self.assert_jumps_once(netns)

    def test_missing_chain_is_named_and_add_nat_restores_it(self, hook, netns) -> None:
        hook.add_nat(bridges=[BRIDGE1])
        hook.add_forward(forwards=[FORWARD])
        self.delete_chain(netns, "LOCKER_FORWARD")
        found = hook.list_rules(project=None)
        assert not found.jumps
        assert any("chain LOCKER_FORWARD" in p for p in found.entry_missing), found.entry_missing
        assert any("jump" in p and "LOCKER_FORWARD" in p for p in found.entry_missing)
        # Where the chain held the rules, they are gone with it (partial
        # values); where it only led into a project's own chains, they stay.
        nat = Bridge(P1, BRIDGE1.name, BRIDGE1.network)
        assert found.partial | found.forwards | found.nat == {FORWARD, nat}
        assert found.partial in ({FORWARD, nat}, frozenset())
        hook.add_nat(bridges=[BRIDGE1])
        found = hook.list_rules(project=None)
        assert found.jumps and found.entry_missing == () and found.nat == {BRIDGE1}
        self.assert_jumps_once(netns)
        hook.add_forward(forwards=[FORWARD])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1}, forwards=[FORWARD])

    def test_duplicate_jump_is_named_and_add_nat_removes_it(self, hook, netns) -> None:
        hook.add_nat(bridges=[BRIDGE1])
        self.add_jump(netns, "LOCKER_FORWARD")
        assert self.jump_counts(netns)["LOCKER_FORWARD"] == 2
        found = hook.list_rules(project=None)
        assert not found.jumps and found.nat == {BRIDGE1}
        assert [p for p in found.entry_missing if "LOCKER_FORWARD" in p], found.entry_missing
        hook.add_nat(bridges=[BRIDGE1])
        self.assert_jumps_once(netns)
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1})

    # ------------------------------------------------------------- blockers

    def test_no_blockers_on_a_clean_namespace(self, hook, populated, netns) -> None:
        assert hook.find_blockers(bridges=[BRIDGE1, BRIDGE2]) == []
        assert hook.find_blockers(bridges=[]) == []

    def test_foreign_forward_drop_is_a_blocker_until_its_fix_ran(self, hook, populated,
                                                                 netns) -> None:
        self.add_forward_drop(netns)
        foreign, mine = self.foreign_state(netns), self.locker_state(netns)
        found = hook.find_blockers(bridges=[BRIDGE1])
        assert len(found) == 1 and isinstance(found[0], Blocker), found
        assert BRIDGE1.name in found[0].what and BRIDGE1.name in found[0].fix
        assert (self.foreign_state(netns), self.locker_state(netns)) == (foreign, mine)
        assert len(hook.find_blockers(bridges=[BRIDGE1, BRIDGE2])) == 2
        netns.run(["sh", "-c", found[0].fix])
        assert hook.find_blockers(bridges=[BRIDGE1]) == []
        assert [b for b in hook.find_blockers(bridges=[BRIDGE1, BRIDGE2])
                if BRIDGE2.name in b.what]
        assert hook.list_rules(project=None) == populated

    # --------------------------------------------------------------- helpers

    def tag_counts(self, netns: NetNS) -> Counter:
        """How many rules carry each tag, counted in ``locker_state``
        (structural ``dispatch`` rules left out)."""
        return Counter(t for t in TAG_PATTERN.findall(self.locker_state(netns))
                       if not t.endswith(":dispatch"))

    def assert_jumps_once(self, netns: NetNS) -> None:
        counts = dict(self.jump_counts(netns))
        assert {"LOCKER_FORWARD", "LOCKER_PREROUTING"} <= counts.keys(), counts
        assert all(n == 1 for n in counts.values()), counts


def argument(hook_name: str) -> str:
    return {"add_nat": "bridges", "remove_nat": "bridges",
            "add_forward": "forwards", "remove_forward": "forwards",
            "add_link": "links", "remove_link": "links"}[hook_name]


def expected(nat=(), forwards=(), links=()) -> Ruleset:
    """The Ruleset ``list_rules(None)`` must return once these were added."""
    return Ruleset(nat=frozenset(nat), forwards=frozenset(forwards),
                   links=frozenset(links), jumps=True)

