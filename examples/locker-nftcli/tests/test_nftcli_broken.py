"""The suite catches what matters: broken copies of the example backend
pass the round trips but fail the suite's traffic tests, with a sentence
naming what is wrong."""

from __future__ import annotations

from dataclasses import replace

import pytest

from locker import hookimpl
from locker.plugins import new_manager
from locker.testing.firewall_suite import FirewallBackendTests
from locker_nftcli import NftCliBackend
from locker_nftcli.rules import nat_rules


class PlusOne(NftCliBackend):
    """Every DNAT goes to the container port + 1, while list_rules reports
    the port asked for."""

    @hookimpl
    def add_forward(self, forwards):
        super().add_forward([replace(f, container_port=f.container_port + 1)
                             for f in forwards])

    @hookimpl
    def list_rules(self, project):
        found = super().list_rules(project)
        return replace(found, forwards=frozenset(
            replace(f, container_port=f.container_port - 1) for f in found.forwards))


class Pretender(NftCliBackend):
    """Writes no forward at all, but lists every forward it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.given = set()

    @hookimpl
    def add_forward(self, forwards):
        self.given |= set(forwards)

    @hookimpl
    def list_rules(self, project):
        found = super().list_rules(project)
        return replace(found, jumps=True, forwards=frozenset(
            f for f in self.given if project in (None, f.project)))


class NoDeny(NftCliBackend):
    """Writes every network rule but the default deny."""

    @hookimpl
    def add_nat(self, bridges):
        self._add([r for b in bridges for r in nat_rules(b) if not r.comment.endswith(":deny")],
                  "add network rules")


class Suite(FirewallBackendTests):  # not collected: its name is no Test*
    def __init__(self, backend: object) -> None:
        self.made = backend

    def make_backend(self) -> object:
        return self.made


@pytest.mark.privileged
@pytest.mark.parametrize("broken", [PlusOne, Pretender])
def test_a_backend_whose_forwards_list_back_passes_the_round_trip(netns, broken) -> None:
    hook = new_manager(broken()).hook
    Suite(broken()).test_forwards_list_back(hook)


@pytest.mark.privileged
def test_a_dnat_to_another_port_fails_the_forward_test(netns) -> None:
    backend = PlusOne()
    suite = Suite(backend)
    with pytest.raises(AssertionError, match=r"must reach the container at 10\.1\.1\.2:80\b"):
        suite.test_traffic_a_forward_reaches_the_container_port(new_manager(backend).hook, netns)


@pytest.mark.privileged
def test_a_backend_that_forwards_no_packet_fails_the_forward_test(netns) -> None:
    backend = Pretender()
    suite = Suite(backend)
    with pytest.raises(AssertionError, match=r"got no answer; the forward must reach"):
        suite.test_traffic_a_forward_reaches_the_container_port(new_manager(backend).hook, netns)


class OneLineAtATime(NftCliBackend):
    """Applies each line of a change as a transaction of its own: a failure
    midway leaves the lines before it in the kernel."""

    def _apply(self, lines, what):
        for line in lines:
            super()._apply([line], what)


@pytest.mark.privileged
def test_a_change_made_in_several_transactions_fails_the_fault_test(netns) -> None:
    backend = OneLineAtATime()
    suite = Suite(backend)
    with pytest.raises(AssertionError, match=r"add_forward: its kernel transaction 2 failed, "
                                             r"and Locker's rules changed"):
        suite.test_failed_transaction_leaves_kernel_unchanged(new_manager(backend).hook, netns)


@pytest.mark.privileged
@pytest.mark.parametrize("damage", [
    ["nft", "flush", "chain", "inet", "admin", "forward"],
    ["iptables-legacy", "-w", "-F", "ADMIN"],
    ["iptables-nft", "-w", "-F", "NFT_ADMIN"],
], ids=["nftables", "iptables-legacy", "iptables-nft"])
def test_a_backend_that_touches_another_tools_rules_fails(netns, damage) -> None:
    import subprocess

    class Vandal(NftCliBackend):
        @hookimpl
        def add_nat(self, bridges):
            super().add_nat(bridges)
            subprocess.run(damage, check=True)

    backend = Vandal()
    with pytest.raises(AssertionError, match=r"add_nat changed another tool.s rules"):
        Suite(backend).test_foreign_rules_stay_identical(new_manager(backend).hook, netns)


class DenyLast(NftCliBackend):
    """Writes each deny rule at the end of LOCKER_FORWARD, after every
    project's accepts, instead of in LOCKER_ISOLATION; lists it as right."""

    @hookimpl
    def add_nat(self, bridges):
        rules = [r for b in bridges for r in nat_rules(b)]
        denies = [replace(r, chain="LOCKER_FORWARD") for r in rules if r.comment.endswith(":deny")]
        self._add([r for r in rules if not r.comment.endswith(":deny")] + denies, "add nat")

    @hookimpl
    def list_rules(self, project):
        found = super().list_rules(project)
        return replace(found, nat=found.nat | found.partial, partial=frozenset(),
                       unrecognised=())


@pytest.mark.privileged
def test_a_deny_rule_behind_the_accepts_passes_the_round_trip(netns) -> None:
    Suite(DenyLast()).test_nat_lists_back(new_manager(DenyLast()).hook)


@pytest.mark.privileged
def test_a_backend_without_the_default_deny_fails_the_routed_neighbour_test(netns) -> None:
    backend = NoDeny()
    with pytest.raises(AssertionError, match=r"a routed neighbour \(192\.0\.2\.2\) reached the "
                                             r"container's own address 10\.1\.1\.2:80"):
        Suite(backend).test_traffic_a_routed_neighbour_reaches_only_the_forwards(
            new_manager(backend).hook, netns)


@pytest.mark.privileged
def test_a_deny_rule_behind_the_accepts_fails_the_other_project_test(netns) -> None:
    backend = DenyLast()
    with pytest.raises(AssertionError, match=r"a container of beta \(10\.1\.2\.2\), whose "
                                             r"outbound rule accepts its traffic, reached"):
        Suite(backend).test_traffic_another_projects_container_is_denied(
            new_manager(backend).hook, netns)


class FirstPortOnly(NftCliBackend):
    """Forwards only the first port of each range, while list_rules reports
    the range."""

    def __init__(self) -> None:
        super().__init__()
        self.ranges = {}

    @hookimpl
    def add_forward(self, forwards):
        self.ranges |= {replace(f, count=1): f for f in forwards}
        super().add_forward([replace(f, count=1) for f in forwards])

    @hookimpl
    def list_rules(self, project):
        found = super().list_rules(project)
        return replace(found, forwards=frozenset(self.ranges.get(f, f) for f in found.forwards))


@pytest.mark.privileged
def test_a_range_that_forwards_its_first_port_only_fails_the_range_test(netns) -> None:
    backend = FirstPortOnly()
    with pytest.raises(AssertionError, match=r"6002/tcp got no answer; the range must reach "
                                             r"container port 7002"):
        Suite(backend).test_traffic_a_port_range_reaches_each_of_its_ports(
            new_manager(backend).hook, netns)
