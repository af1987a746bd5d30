"""Conformance suite for Locker firewall backends.

Every firewall backend, built in or third-party, proves that it keeps the
contract of the *Firewall* hooks in ``locker.hookspecs`` by running this
suite against the real kernel. The plugin object is registered alone with
``locker.plugins.new_manager(plugin)`` and driven through
``manager.hook.<name>(...)`` with keyword arguments, exactly as the core
drives it.

The whole test module of a backend (``examples/locker-nftcli`` has one)::

    from locker.testing.firewall_suite import FirewallBackendTests


    class TestMine(FirewallBackendTests):
        backend_name = "mine"           # its entry point in locker.firewall
        rule_store = "nftables"         # or "iptables-legacy", "iptables-nft"

What a subclass may set (class attributes):

``backend_name`` (required unless ``make_backend`` is overridden)
    The backend's entry-point name; the suite loads it with
    ``locker.plugins.load`` once per test, after the test process entered
    the test's network namespace.
``rule_store``
    Where the backend keeps its rules, read and broken by the suite with
    that store's own tool (``locker.testing.stores``): ``nftables`` (tables
    named ``locker*``, the default), ``iptables-legacy``, ``iptables-nft``.
``skips``
    ``{"TEST NAME without test_": "why it cannot apply"}``: tests that do
    not apply to the backend. They skip with that reason, also under CI's
    ``LOCKER_TESTS_NO_SKIP=1`` (they carry ``may_skip``); a name that is no
    test of the suite is an error.

Methods a subclass may override (each has a default):

``make_backend() -> object``
    A new plugin object (default: ``load(FIREWALL, backend_name)``).
``add_foreign_rules(netns)``
    Another tool's rules: by default ``locker.testing.stores.FOREIGN`` for
    every store whose tool is installed (nftables, iptables-legacy and
    iptables-nft), at the hooks Locker uses. Add more by calling
    ``super().add_foreign_rules(netns)`` first. ``foreign_state`` dumps
    every store (without Locker's tables, chains and tagged rules, and
    without counters) and is compared byte for byte.
``drop_in_user_chain(netns, source)``, ``user_chain_rules(netns)``
    What an administrator does to ``LOCKER_USER`` (appends a drop of
    ``source``), and how many rules it holds, with the store's tool.
``add_forward_drop(netns)``
    Another tool's base chain at the forward hook that drops by policy
    (default: an nftables table ``inet hostfw``), where ``find_blockers``
    must see it.
``failing_transaction(n)``
    A context manager under which the backend's ``n``-th kernel
    transaction fails after its commands were accepted. The default is the
    core's mechanism, ``locker.testing.faults``, which works for backends
    that use the nftables binding, python-iptables, ``nft -f`` or
    ``iptables-restore``.

What the suite proves:

- the contract: every hook of the role is implemented, marked
  ``@hookimpl``, with the hookspec's arguments, and the backend declares
  ``locker_api`` (else every test fails with a sentence naming the hook);
- round trips: what the hooks add lists back exactly (port ranges and an
  isolated bridge too), a nat value is complete only with every one of its
  rules (masquerade, hairpin, outbound, replies, deny, localhost, guard,
  and isolate, from which ``isolated`` is read back), partial and
  unrecognised rules are found and repaired, chains and jumps (into
  ``LOCKER_FORWARD``, ``LOCKER_PREROUTING``, ``LOCKER_USER``,
  ``LOCKER_ISOLATION``, ``LOCKER_INPUT``) are made once and repaired,
  other projects and other tools are untouched, failed transactions change
  nothing;
- behaviour, with real packets (``locker.testing.traffic``) between
  namespaces and veth pairs the suite builds inside the test's namespace
  (a bridge named as Locker names it, a container behind it, an outside
  client on an uplink that routes the bridge's subnet through the host, a
  link peer on a routed veth), after appending a drop behind Locker's jump
  into ``LOCKER_FORWARD`` so that only what Locker's rules accept passes: a
  forward is reached from outside and goes to the container port (a DNAT
  to any other port fails, whatever ``list_rules`` says), only on its
  ``host_ip`` when it has one; a port range reaches its first, a middle and
  its last port, each at its own container port, and not the port after
  it; a forward is reached from the host itself at its local addresses and
  at 127.0.0.1; a port that is not forwarded, and the container's own
  address, do not reach the container; a link passes between its two
  addresses and no other, and not after ``remove_link``; masquerade makes
  the peer see the host's address. A drop the administrator appends to
  ``LOCKER_USER`` wins over Locker's accepts and stays through
  ``add_forward``, ``add_nat`` and ``cleanup``. Without the suite's drop
  (the host forwarding everything): a neighbour that routes the bridge's
  network through the host reaches the container only through its
  forwards, never at its own address, and a container of another project
  (whose outbound rule accepts its traffic) does not reach it either
  (``add_nat``'s deny), while the containers' own connections pass.
- IPv6 (a Bridge with ``network6``, Forwards and Links of IPv6 addresses):
  the same round trips (masqueraded and routed ``nat6``, isolated), the
  IPv6 rules go with their project and with ``remove_nat``, and real IPv6
  packets: a forward to an IPv6 host address and one without host address
  reach the container from outside, keeping the caller's address, and the
  masquerade makes the peer see the host's IPv6 address.

The host's firewalld and ufw are out of the namespace: the suite replaces
``locker.blockers.host_firewalls`` by one that finds neither. Every test
runs in the ``netns`` fixture (``locker.testing.pytest_plugin``): in a
process of its own inside a fresh network namespace; it skips without root.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from locker import plugins
from locker.errors import BackendError
from locker.model import Availability, Blocker, Bridge, Forward, Link, Ruleset
from locker.names import Tag, bridge_name
from locker.pieces import nat_keys
from locker.testing import faults, stores
from locker.testing.contract import BackendSuite
from locker.testing.netns import NetNS
from locker.testing.traffic import Lab

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
#: Port ranges (``Forward.count``): shifted (host ports to other container
#: ports) and not, with and without host_ip, tcp and udp.
RANGES1 = (
    Forward(P1, "web", 6000, ip("10.1.1.2"), 7000, count=5),
    Forward(P1, "dns", 6100, ip("10.1.1.3"), 6100, "udp", count=3),
)
RANGES2 = (
    Forward(P2, "web", 6200, ip("10.1.2.2"), 6200, "tcp", ip("192.0.2.11"), count=10),
    Forward(P2, "db", 6300, ip("10.1.2.3"), 5000, "udp", ip("192.0.2.11"), count=2),
)
#: BRIDGE2 of an isolated project (its nat value has the isolate rule).
ISOLATED2 = Bridge(P2, BRIDGE2.name, BRIDGE2.network, isolated=True)
#: What ``populate`` adds.
NAT = (BRIDGE1, ISOLATED2)
ALL_FORWARDS = FORWARDS1 + RANGES1 + FORWARDS2 + RANGES2
ALL_LINKS = LINKS1 + LINKS2
#: Every purpose of a bridge's nat value but isolate (``locker.pieces``).
NAT_PURPOSES = ("masquerade", "hairpin", "outbound", "replies", "deny", "localhost", "guard")
#: Locker's chains that every adding hook makes, each entered by a jump.
ENTRY_CHAINS = ("LOCKER_FORWARD", "LOCKER_PREROUTING", "LOCKER_USER", "LOCKER_ISOLATION",
                "LOCKER_INPUT")

HOOKS = ("add_nat", "remove_nat", "add_forward", "remove_forward", "add_link", "remove_link")

#: A forward with a host address, whose two rules are the only ones with
#: their tags in the tests that break rules.
FORWARD = FORWARDS1[1]
LINK = LINKS1[0]

#: The traffic tests' world: the host (the test's namespace) has the bridge
#: of P1 (10.1.1.1/24) with the container "web" (10.1.1.2) behind it, an
#: uplink (192.0.2.1/24 and 192.0.2.10/24) to the outside (192.0.2.2, with a
#: route to 10.1.1.0/24 through the host) and a routed veth (10.1.9.1/24) to
#: the link peer "db" (10.1.9.3 and, not linked, 10.1.9.4). Some tests add
#: the bridge of P2 (10.1.2.1/24) with a container "other" (10.1.2.2).
HOST_IP, HOST_IP2, OUTSIDE_IP = "192.0.2.1", "192.0.2.10", "192.0.2.2"
WEB_IP, DB_IP, STRANGER_IP, OTHER_IP = "10.1.1.2", "10.1.9.3", "10.1.9.4", "10.1.2.2"
LOOPBACK_IP = "127.0.0.1"
TRAFFIC_FORWARDS = (
    Forward(P1, "web", 8080, ip(WEB_IP), 80),
    Forward(P1, "web", 8443, ip(WEB_IP), 443, "tcp", ip(HOST_IP2)),
    Forward(P1, "web", 5353, ip(WEB_IP), 53, "udp"),
)
TRAFFIC_LINK = Link(P1, "web", ip(WEB_IP), "db", ip(DB_IP))
#: A forward only for connections from the host itself to 127.0.0.1.
LOOPBACK_FORWARD = Forward(P1, "web", 8082, ip(WEB_IP), 81, "tcp", ip(LOOPBACK_IP))
#: Ranges to web: shifted (6000-6004 to 7000-7004) and not (udp 6100-6102).
TRAFFIC_RANGES = (
    Forward(P1, "web", 6000, ip(WEB_IP), 7000, count=5),
    Forward(P1, "web", 6100, ip(WEB_IP), 6100, "udp", count=3),
)


#: IPv6: project P1's bridge with its /64, and its IPv6 forwards and links.
NET6 = IPv6Network("fd00:1234:5678:101::/64")
BRIDGE1_6 = replace(BRIDGE1, network6=NET6)
HOST6, HOST6_2, OUTSIDE6 = "2001:db8:1::1", "2001:db8:1::10", "2001:db8:1::2"
WEB6, DNS6, DB6 = NET6[2], NET6[3], NET6[4]
FORWARDS6 = (
    Forward(P1, "web", 8080, WEB6, 80),
    Forward(P1, "web", 8443, WEB6, 443, "tcp", IPv6Address(HOST6_2)),
    Forward(P1, "dns", 5353, DNS6, 53, "udp"),
)
LINKS6 = (Link(P1, "web", WEB6, "dns", DNS6), Link(P1, "web", WEB6, "db", DB6))
#: The IPv6 cases (names without ``test_``): what a backend that writes IPv4
#: only (and refuses IPv6 values with a BackendError) declares in ``skips``.
IPV6_TESTS = ("ipv6_values_list_back", "ipv6_rules_go_with_remove_and_cleanup",
              "traffic_ipv6_forwards_and_masquerade")


def tag(value: Forward | Link, purpose: str) -> str:
    peer = getattr(value, "peer", None)
    return str(Tag(value.project, purpose, value.container, peer))


def nat_tag(project: str, purpose: str) -> str:
    return str(Tag(project, purpose))


FORWARD_DROP = """
table inet hostfw {
    chain forward {
        type filter hook forward priority filter + 10; policy drop;
        ct state established,related accept
    }
}
"""


class FirewallBackendTests(BackendSuite):
    """The conformance tests; see the module docstring for how to subclass."""

    namespace = plugins.FIREWALL
    rule_store: str = "nftables"

    # ------------------------------------------------ the subclass interface

    @property
    def store(self) -> stores.Nft | stores.Iptables:
        return stores.store(self.rule_store)

    def add_foreign_rules(self, netns: NetNS) -> None:
        for name in stores.FOREIGN:
            if stores.available(name):
                stores.add_foreign(netns, name)

    def foreign_state(self, netns: NetNS) -> str:
        return stores.foreign_state(netns)

    def locker_state(self, netns: NetNS) -> str:
        return self.store.state(netns)

    def jump_counts(self, netns: NetNS) -> Mapping[str, int]:
        return self.store.jump_counts(netns)

    def delete_locker_rule(self, netns: NetNS, comment: str, nth: int = 0) -> None:
        self.store.delete_piece(netns, self._piece(netns, comment, nth))

    def set_dnat_port(self, netns: NetNS, comment: str, port: int, nth: int = 0) -> None:
        """Alter the DNAT tagged ``comment`` in the kernel to go to ``port``."""
        self.store.set_dnat_port(netns, self._piece(netns, comment, nth), port)

    def add_tagged_rule(self, netns: NetNS, comment: str, chain: str) -> None:
        self.store.add_tagged_rule(netns, comment, chain)

    def delete_jump(self, netns: NetNS, chain: str) -> None:
        self.store.delete_jump(netns, chain)

    def add_jump(self, netns: NetNS, chain: str) -> None:
        self.store.add_jump(netns, chain)

    def delete_chain(self, netns: NetNS, chain: str) -> None:
        self.store.delete_chain(netns, chain)

    def add_forward_drop(self, netns: NetNS) -> None:
        netns.run(["nft", "-f", "-"], input=FORWARD_DROP)

    def drop_in_user_chain(self, netns: NetNS, source: str) -> None:
        """What an administrator does: append a drop of packets from
        ``source`` to ``LOCKER_USER``, with no comment."""
        self.store.drop_in_user_chain(netns, source)

    def user_chain_rules(self, netns: NetNS) -> int:
        """How many rules ``LOCKER_USER`` holds (0 when it is missing)."""
        return self.store.user_chain_rules(netns)

    @contextmanager
    def failing_transaction(self, n: int) -> Iterator[faults.Fault]:
        with tempfile.TemporaryDirectory(prefix="locker-fault-") as workdir, \
                faults.failing_transaction(n, Path(workdir)) as fault:
            yield fault

    def _piece(self, netns: NetNS, comment: str, nth: int) -> stores.Piece:
        found = [p for p in self.store.pieces(netns) if p.comment == comment]
        assert len(found) > nth, (
            f"no rule tagged {comment} in the {self.rule_store} store (found "
            f"{sorted({p.comment for p in self.store.pieces(netns)})}); is rule_store right?")
        return found[nth]

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
    def populated(self, hook) -> Ruleset:
        """Two projects' nat, forwards and links in the kernel."""
        return populate(hook)

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

    def test_port_ranges_list_back(self, hook) -> None:
        hook.add_forward(forwards=RANGES1 + RANGES2)
        assert hook.list_rules(project=None) == expected(forwards=RANGES1 + RANGES2)
        hook.remove_forward(forwards=RANGES1[:1] + RANGES2[1:])
        assert hook.list_rules(project=None) == expected(forwards=RANGES1[1:] + RANGES2[:1])
        # a range is one value: its single ports are other forwards
        first = Forward(P1, "dns", 6100, ip("10.1.1.3"), 6100, "udp")
        hook.remove_forward(forwards=[first])
        assert hook.list_rules(project=None) == expected(forwards=RANGES1[1:] + RANGES2[:1])

    def test_isolated_nat_lists_back_and_changes(self, hook, netns) -> None:
        """``isolated`` is read back from the isolate rule; the repair of a
        changed ``isolated`` (remove_nat of the old value, add_nat of the
        new) leaves no rule of the old one."""
        hook.add_nat(bridges=[BRIDGE1, ISOLATED2])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1, ISOLATED2})
        counts = self.tag_counts(netns)
        assert counts[nat_tag(P2, "isolate")] == 1 and nat_tag(P1, "isolate") not in counts
        self.delete_locker_rule(netns, nat_tag(P2, "isolate"))
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1, BRIDGE2})
        hook.add_nat(bridges=[ISOLATED2])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1, ISOLATED2})
        hook.remove_nat(bridges=[ISOLATED2])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1})
        assert not any(t.startswith(f"locker:{P2}:") for t in self.tag_counts(netns))
        hook.add_nat(bridges=[BRIDGE2])
        assert hook.list_rules(project=None) == expected(nat={BRIDGE1, BRIDGE2})
        assert nat_tag(P2, "isolate") not in self.tag_counts(netns)

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
        hook.add_nat(bridges=NAT)
        hook.add_forward(forwards=ALL_FORWARDS)
        hook.add_link(links=ALL_LINKS)
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
        gone = (FORWARDS1[0], FORWARDS1[3], FORWARDS2[1], RANGES1[0], RANGES2[1])
        hook.remove_forward(forwards=gone)
        kept = [f for f in ALL_FORWARDS if f not in gone]
        assert hook.list_rules(project=None) == expected(
            nat=NAT, forwards=kept, links=ALL_LINKS)

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
            nat=NAT, forwards=ALL_FORWARDS, links=LINKS1[1:] + LINKS2)

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
        populate(hook)
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
            lambda: hook.add_nat(bridges=NAT),
            lambda: hook.add_forward(forwards=ALL_FORWARDS),
            lambda: hook.add_link(links=ALL_LINKS),
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
        names = ["add_nat", "add_forward", "add_link", "list_rules", "remove_forward",
                 "remove_link", "remove_unrecognised", "find_blockers", "remove_nat",
                 "cleanup", "cleanup", "firewall_availability"]
        for name, step in zip(names, steps):
            step()
            after = self.foreign_state(netns)
            assert after == foreign, (
                f"{name} changed another tool's rules (foreign_state before, then after):\n"
                f"{foreign}\n---\n{after}")
        self.assert_jumps_once(netns)

    def test_foreign_rules_do_not_list(self, hook, netns) -> None:
        self.add_foreign_rules(netns)
        assert hook.list_rules(project=None) == Ruleset()
        hook.add_forward(forwards=FORWARDS1[:1])
        assert hook.list_rules(project=None) == expected(forwards=FORWARDS1[:1])

    def test_failed_transaction_leaves_kernel_unchanged(self, hook, netns) -> None:
        """Each kernel transaction of each hook call fails in turn (the first,
        then the second, ... until the call makes no more): the call raises
        BackendError and the kernel is as it was, also where an earlier
        transaction of the same call had been committed."""
        self.add_foreign_rules(netns)
        batches = [
            lambda: hook.add_forward(forwards=[Forward(P1, "web", 8090, ip("10.1.1.2"), 90),
                                               Forward(P1, "web", 8091, ip("10.1.1.2"), 91,
                                                       count=3)]),
            lambda: hook.add_link(links=[Link(P1, "web", ip("10.1.1.2"), "cache", ip("10.1.1.9"))]),
            lambda: hook.add_nat(bridges=[replace(bridge("gamma", 3), isolated=True)]),
            lambda: hook.remove_forward(forwards=FORWARDS1),
            lambda: hook.remove_link(links=LINKS1),
            lambda: hook.cleanup(project=P1),
        ]
        names = ["add_forward", "add_link", "add_nat", "remove_forward", "remove_link",
                 "cleanup"]
        for name, batch in zip(names, batches):
            for n in range(1, 10):
                for project in (P1, P2, "gamma"):
                    hook.cleanup(project=project)
                populated = populate(hook)
                foreign, mine = self.foreign_state(netns), self.locker_state(netns)
                with self.failing_transaction(n) as fault:
                    try:
                        batch()
                        raised = None
                    except BackendError as exc:
                        raised = exc
                if not fault.fired:
                    assert raised is None, f"{name} raised without a fault: {raised}"
                    assert n > 1, (
                        f"{name} made no kernel transaction the suite can make fail (none "
                        f"went through the nftables binding, python-iptables, nft -f or "
                        f"iptables-restore): override failing_transaction, or declare a skip")
                    break
                assert raised is not None, (
                    f"{name}: its kernel transaction {n} failed, but it raised no "
                    f"BackendError")
                assert self.locker_state(netns) == mine, (
                    f"{name}: its kernel transaction {n} failed, and Locker's rules changed")
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

    @pytest.mark.parametrize("purpose", NAT_PURPOSES)
    def test_partial_nat_is_listed_completed_and_removed(self, hook, netns, purpose) -> None:
        """A nat value is complete only with every one of its rules."""
        hook.add_nat(bridges=[BRIDGE1, BRIDGE2])
        self.delete_locker_rule(netns, nat_tag(P1, purpose))
        # the masquerade and the hairpin both name the network
        rebuilt = Bridge(P1, BRIDGE1.name, BRIDGE1.network)
        assert hook.list_rules(project=None) == Ruleset(
            nat=frozenset({BRIDGE2}), jumps=True, partial=frozenset({rebuilt}))
        assert hook.list_rules(project=P2) == expected(nat={BRIDGE2})
        hook.add_nat(bridges=[rebuilt])        # the repair of a partial value
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
            nat={ISOLATED2}, forwards=ALL_FORWARDS, links=ALL_LINKS)
        counts = self.tag_counts(netns)
        assert not {nat_tag(P1, p) for p in NAT_PURPOSES} & counts.keys()
        assert {nat_tag(P2, p) for p in NAT_PURPOSES + ("isolate",)} <= counts.keys()

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
        self.set_dnat_port(netns, tag(wanted, "dnat"), 81)
        assert hook.list_rules(project=None) == Ruleset(
            jumps=True, partial=frozenset({wanted, altered}))
        hook.remove_forward(forwards=[altered])      # the repair: stale first ...
        assert hook.list_rules(project=None) == Ruleset(jumps=True, partial=frozenset({wanted}))
        assert self.tag_counts(netns) == {tag(wanted, "forward"): 1}
        hook.add_forward(forwards=[wanted])          # ... then what is missing
        assert hook.list_rules(project=None) == expected(forwards=[wanted])
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

    @pytest.mark.parametrize("chain", ENTRY_CHAINS)
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

    # -------------------------------------------------------------- traffic

    @contextmanager
    def lab(self, netns: NetNS) -> Iterator[Lab]:
        """The traffic tests' world (see ``HOST_IP``), with servers: web on
        tcp 80, 81, 443, 9999 and udp 53, the outside on tcp 9000, db on
        tcp 5432."""
        with Lab(netns) as lab:
            lab.bridge(BRIDGE1.name, "10.1.1.1/24")
            lab.wire("web", "vweb", None, [f"{WEB_IP}/24"], gateway="10.1.1.1",
                     master=BRIDGE1.name)
            lab.wire("outside", "uplink", f"{HOST_IP}/24", [f"{OUTSIDE_IP}/24"],
                     routes=[f"10.1.1.0/24 via {HOST_IP}"])
            netns.run(["ip", "addr", "add", f"{HOST_IP2}/24", "dev", "uplink"])
            lab.wire("db", "vdb", "10.1.9.1/24", [f"{DB_IP}/24", f"{STRANGER_IP}/24"],
                     gateway="10.1.9.1")
            lab.forwarding()
            lab.serve("web", "web", "tcp/80", "tcp/81", "tcp/443", "tcp/9999", "udp/53")
            lab.serve("outside", "outside", "tcp/9000")
            lab.serve("db", "db", "tcp/5432")
            yield lab

    def close_forwarding(self, netns: NetNS) -> None:
        """Drop what Locker's ``LOCKER_FORWARD`` did not accept, right after
        the jump into it, so that only Locker's accepts let packets through
        (no assumption about the host's own forward policy)."""
        self.store.drop_after_forward(netns)

    def test_traffic_a_forward_reaches_the_container_port(self, hook, netns) -> None:
        with self.lab(netns) as lab:
            hook.add_nat(bridges=[BRIDGE1])
            hook.add_forward(forwards=TRAFFIC_FORWARDS)
            self.close_forwarding(netns)
            for forward in TRAFFIC_FORWARDS:
                host = str(forward.host_ip or HOST_IP)
                answer = lab.call("outside", forward.protocol, host, forward.host_port)
                assert answer and answer.split()[:2] == ["web", str(forward.container_port)], (
                    f"{forward}: a client outside calling {host}:{forward.host_port}/"
                    f"{forward.protocol} got {_said(answer)}; the forward must reach the "
                    f"container at {forward.container_ip}:{forward.container_port}")
                assert answer.split()[2] == OUTSIDE_IP, (
                    f"{forward}: the container saw the caller as {answer.split()[2]}, not "
                    f"{OUTSIDE_IP}: a forward must not rewrite the source")

    def test_traffic_nothing_else_reaches_the_container(self, hook, netns) -> None:
        with self.lab(netns) as lab:
            hook.add_nat(bridges=[BRIDGE1])
            hook.add_forward(forwards=TRAFFIC_FORWARDS)
            self.close_forwarding(netns)
            for host, port, why in (
                    (HOST_IP, 9999, "a host port that is not forwarded"),
                    (HOST_IP, 8443, f"a forward with host_ip {HOST_IP2}, called on {HOST_IP}"),
                    (WEB_IP, 80, "the container's own address, without a DNAT"),
                    (WEB_IP, 9999, "the container's own address, without a DNAT")):
                answer = lab.call("outside", "tcp", host, port, expect=False)
                assert answer is None or not answer.startswith("web"), (
                    f"{why} ({host}:{port}) reached the container ({answer!r}); only "
                    f"forwarded ports may")

    def test_traffic_a_routed_neighbour_reaches_only_the_forwards(self, hook, netns) -> None:
        """Default deny: with the host's forward policy accept (the suite adds
        no drop here), a neighbour routing the bridge's network through the
        host reaches a container only through its forwards (``add_nat``'s
        deny rule), never at the container's own address."""
        with self.lab(netns) as lab:
            hook.add_nat(bridges=[BRIDGE1])
            hook.add_forward(forwards=TRAFFIC_FORWARDS)
            answer = lab.call("outside", "tcp", HOST_IP, 8080)
            assert answer and answer.split()[0] == "web", (
                f"the forward 8080/tcp called at {HOST_IP} got {_said(answer)}")
            for port in (80, 9999):
                answer = lab.call("outside", "tcp", WEB_IP, port, expect=False)
                assert answer is None, (
                    f"a routed neighbour ({OUTSIDE_IP}) reached the container's own address "
                    f"{WEB_IP}:{port} ({answer!r}) with the host's forward policy accept; "
                    f"add_nat's deny rule must drop new connections into the bridge that "
                    f"no forward DNATed")

    def test_traffic_masquerade_shows_the_host_address(self, hook, netns) -> None:
        with self.lab(netns) as lab:
            hook.add_nat(bridges=[BRIDGE1])
            self.close_forwarding(netns)
            answer = lab.call("web", "tcp", OUTSIDE_IP, 9000)
            assert answer and answer.split()[2] == HOST_IP, (
                f"the container called the outside ({OUTSIDE_IP}:9000), which saw "
                f"{_said(answer)}; with add_nat it must see the host's address {HOST_IP}")
            hook.remove_nat(bridges=[BRIDGE1])
            answer = lab.call("web", "tcp", OUTSIDE_IP, 9000, expect=False)
            assert answer is None, (
                f"after remove_nat the container still reaches the outside ({answer!r})")

    def test_traffic_a_link_joins_its_two_addresses_only(self, hook, netns) -> None:
        with self.lab(netns) as lab:
            hook.add_link(links=[TRAFFIC_LINK])
            self.close_forwarding(netns)
            answer = lab.call("web", "tcp", DB_IP, 5432)
            assert answer and answer.split()[0] == "db", (
                f"{TRAFFIC_LINK}: {WEB_IP} calling {DB_IP}:5432 got {_said(answer)}")
            answer = lab.call("db", "tcp", WEB_IP, 80, source=DB_IP)
            assert answer and answer.split()[0] == "web", (
                f"{TRAFFIC_LINK}: {DB_IP} calling {WEB_IP}:80 got {_said(answer)}; a link "
                f"accepts both directions")
            for where, address, port, source in (("db", WEB_IP, 80, STRANGER_IP),
                                                 ("web", STRANGER_IP, 5432, None)):
                answer = lab.call(where, "tcp", address, port, expect=False, source=source)
                assert answer is None, (
                    f"{TRAFFIC_LINK}: traffic between {source or WEB_IP} and {address}, "
                    f"which are not linked, passed ({answer!r})")
            hook.remove_link(links=[TRAFFIC_LINK])
            answer = lab.call("web", "tcp", DB_IP, 5432, expect=False)
            assert answer is None, f"after remove_link the link still passes ({answer!r})"

    def test_traffic_another_projects_container_is_denied(self, hook, netns) -> None:
        """Without the suite's drop (the host forwarding everything): the
        deny rule of P1 drops a container of P2 calling P1's container,
        although P2's outbound rule accepts its traffic (the deny rules
        come first, in LOCKER_ISOLATION); the containers' own connections
        to the outside pass."""
        with self.lab(netns) as lab:
            lab.bridge(BRIDGE2.name, "10.1.2.1/24")
            lab.wire("other", "vother", None, [f"{OTHER_IP}/24"], gateway="10.1.2.1",
                     master=BRIDGE2.name)
            answer = lab.call("other", "tcp", WEB_IP, 80)
            assert answer and answer.startswith("web"), (
                f"the suite's lab is broken: before any rule, {OTHER_IP} calling {WEB_IP}:80 "
                f"got {_said(answer)}")
            hook.add_nat(bridges=[BRIDGE1, BRIDGE2])
            answer = lab.call("other", "tcp", WEB_IP, 80, expect=False)
            assert answer is None, (
                f"a container of {P2} ({OTHER_IP}), whose outbound rule accepts its traffic, "
                f"reached the container of {P1} at {WEB_IP}:80 directly ({answer!r}); the deny "
                f"rule of {P1} in LOCKER_ISOLATION (jumped to at the head of LOCKER_FORWARD) "
                f"must drop new connections into {BRIDGE1.name} that are no forward, whatever "
                f"the other projects' accepts")
            for where in ("web", "other"):
                answer = lab.call(where, "tcp", OUTSIDE_IP, 9000)
                assert answer and answer.startswith("outside"), (
                    f"with the deny rules, {where} calling {OUTSIDE_IP}:9000 got "
                    f"{_said(answer)}; a container's own connections and their replies "
                    f"must pass")

    def test_traffic_a_drop_in_locker_user_wins_and_stays(self, hook, netns) -> None:
        """The administrator's chain LOCKER_USER comes before Locker's
        accepts; Locker never reports, changes or deletes its rules."""
        more = Forward(P1, "web", 8081, ip(WEB_IP), 81)
        with self.lab(netns) as lab:
            hook.add_nat(bridges=[BRIDGE1])
            hook.add_forward(forwards=TRAFFIC_FORWARDS[:1])
            self.close_forwarding(netns)
            answer = lab.call("outside", "tcp", HOST_IP, 8080)
            assert answer and answer.startswith("web"), (
                f"{TRAFFIC_FORWARDS[0]} got {_said(answer)}")
            self.drop_in_user_chain(netns, OUTSIDE_IP)
            assert hook.list_rules(project=None) == expected(
                nat={BRIDGE1}, forwards=TRAFFIC_FORWARDS[:1]), (
                "the administrator's rule in LOCKER_USER changed what list_rules reports")
            answer = lab.call("outside", "tcp", HOST_IP, 8080, expect=False)
            assert answer is None, (
                f"a drop of {OUTSIDE_IP} in LOCKER_USER did not stop the forward "
                f"({answer!r}); LOCKER_USER must be the first thing LOCKER_FORWARD jumps to")
            hook.add_forward(forwards=[more])       # as `ports` and `start` would
            hook.add_nat(bridges=[BRIDGE1])
            for port in (8080, 8081):
                answer = lab.call("outside", "tcp", HOST_IP, port, expect=False)
                assert answer is None, (
                    f"after add_forward and add_nat, {HOST_IP}:{port} passed the "
                    f"administrator's drop in LOCKER_USER ({answer!r})")
            assert self.user_chain_rules(netns) == 1, "LOCKER_USER lost or gained rules"
            hook.cleanup(project=P1)
            assert self.user_chain_rules(netns) == 1, (
                "cleanup of the last project took the administrator's rule in LOCKER_USER")

    def test_traffic_a_forward_is_reached_from_the_host_itself(self, hook, netns) -> None:
        """The nat output hook sends the host's own connections to local
        addresses through LOCKER_PREROUTING; at 127.0.0.1 the localhost rule
        masquerades them (the link backend sets route_localnet on the
        bridge, as the lab does)."""
        with self.lab(netns) as lab:
            hook.add_nat(bridges=[BRIDGE1])
            hook.add_forward(forwards=TRAFFIC_FORWARDS + (LOOPBACK_FORWARD,))
            self.close_forwarding(netns)
            for host, port, container_port in ((HOST_IP, 8080, 80), (LOOPBACK_IP, 8080, 80),
                                               (HOST_IP2, 8443, 443),
                                               (LOOPBACK_IP, 8082, 81)):
                answer = lab.call("host", "tcp", host, port)
                assert answer and answer.split()[:2] == ["web", str(container_port)], (
                    f"the host itself calling {host}:{port} got {_said(answer)}; a forward "
                    f"must also work from the host to a local address (DNAT from the nat "
                    f"output hook; masquerade of 127.0.0.0/8 out of the bridge)")
            answer = lab.call("outside", "tcp", HOST_IP, 8082, expect=False)
            assert answer is None or not answer.startswith("web"), (
                f"{LOOPBACK_FORWARD} was reached from outside at {HOST_IP} ({answer!r})")

    def test_traffic_a_port_range_reaches_each_of_its_ports(self, hook, netns) -> None:
        with self.lab(netns) as lab:
            lab.serve("web", "web", *[f"tcp/{p}" for p in range(7000, 7006)],
                      *[f"udp/{p}" for p in range(6100, 6104)])
            hook.add_nat(bridges=[BRIDGE1])
            hook.add_forward(forwards=TRAFFIC_RANGES)
            self.close_forwarding(netns)
            for forward in TRAFFIC_RANGES:
                for offset in (0, forward.count // 2, forward.count - 1):
                    port, wanted = forward.host_port + offset, forward.container_port + offset
                    answer = lab.call("outside", forward.protocol, HOST_IP, port)
                    assert answer and answer.split()[:2] == ["web", str(wanted)], (
                        f"{forward}: a client outside calling {HOST_IP}:{port}/"
                        f"{forward.protocol} got {_said(answer)}; the range must reach "
                        f"container port {wanted}")
                after = forward.host_end + 1
                answer = lab.call("outside", forward.protocol, HOST_IP, after, expect=False)
                assert answer is None or not answer.startswith("web"), (
                    f"{forward}: {HOST_IP}:{after}/{forward.protocol}, the port after the "
                    f"range, reached the container ({answer!r})")

    # ----------------------------------------------------------------- IPv6

    @pytest.mark.parametrize("bridge", [BRIDGE1_6, replace(BRIDGE1_6, nat6=False),
                                        replace(BRIDGE1_6, isolated=True)],
                             ids=["masqueraded", "routed", "isolated"])
    def test_ipv6_values_list_back(self, hook, bridge) -> None:
        hook.add_nat(bridges=[bridge, BRIDGE2])
        hook.add_forward(forwards=FORWARDS6 + FORWARDS1[:1])
        hook.add_link(links=LINKS6 + LINKS1[:1])
        assert hook.list_rules(project=None) == expected(
            nat={bridge, BRIDGE2}, forwards=FORWARDS6 + FORWARDS1[:1],
            links=LINKS6 + LINKS1[:1])
        assert hook.list_rules(project=P2) == expected(nat={BRIDGE2})

    def test_ipv6_rules_go_with_remove_and_cleanup(self, hook, netns) -> None:
        hook.add_nat(bridges=[BRIDGE1_6, BRIDGE2])
        hook.add_forward(forwards=FORWARDS6)
        hook.add_link(links=LINKS6)
        hook.remove_forward(forwards=FORWARDS6[:1])
        hook.remove_link(links=LINKS6[:1])
        assert hook.list_rules(project=P1) == expected(
            nat={BRIDGE1_6}, forwards=FORWARDS6[1:], links=LINKS6[1:])
        hook.remove_nat(bridges=[BRIDGE1_6])          # the project turned IPv6 off
        hook.add_nat(bridges=[BRIDGE1])
        assert hook.list_rules(project=P1) == expected(
            nat={BRIDGE1}, forwards=FORWARDS6[1:], links=LINKS6[1:])
        hook.cleanup(project=P1)
        assert hook.list_rules(project=None) == expected(nat={BRIDGE2})
        assert not [p for p in self.store.pieces(netns) if p.comment.startswith(f"locker:{P1}:")]

    @contextmanager
    def lab6(self, netns: NetNS) -> Iterator[Lab]:
        """The traffic world in IPv6: the bridge of P1 with ::1/64 and web
        at ::2 behind it, an uplink (2001:db8:1::1 and ::10) to the outside
        (2001:db8:1::2, routing the /64 through the host); web serves tcp 80
        and 443, the outside tcp 9000."""
        with Lab(netns) as lab:
            lab.bridge(BRIDGE1.name, "10.1.1.1/24")
            netns.run(["ip", "-6", "addr", "add", f"{NET6[1]}/64", "dev", BRIDGE1.name, "nodad"])
            lab.wire("web", "vweb", None, [f"{WEB6}/64"], master=BRIDGE1.name,
                     gateway6=str(NET6[1]))
            lab.wire("outside", "uplink", None, [f"{OUTSIDE6}/64"],
                     host_address6=f"{HOST6}/64", routes=[f"{NET6} via {HOST6}"])
            netns.run(["ip", "-6", "addr", "add", f"{HOST6_2}/64", "dev", "uplink", "nodad"])
            lab.forwarding(ipv6=True)
            lab.serve("web", "web", "tcp/80", "tcp/443")
            lab.serve("outside", "outside", "tcp/9000")
            yield lab

    def test_traffic_ipv6_forwards_and_masquerade(self, hook, netns) -> None:
        with self.lab6(netns) as lab:
            hook.add_nat(bridges=[BRIDGE1_6])
            hook.add_forward(forwards=FORWARDS6[:2])
            for forward in FORWARDS6[:2]:
                host = str(forward.host_ip or HOST6)
                answer = lab.call("outside", "tcp", host, forward.host_port)
                assert answer and answer.split() == ["web", str(forward.container_port),
                                                     OUTSIDE6], (
                    f"{forward}: a client outside calling [{host}]:{forward.host_port} got "
                    f"{_said(answer)}; the forward must reach the container at "
                    f"[{forward.container_ip}]:{forward.container_port}, keeping the caller")
            answer = lab.call("outside", "tcp", HOST6, 8443, expect=False)
            assert answer is None or not answer.startswith("web"), (
                f"a forward with host_ip {HOST6_2} answered on {HOST6} ({answer!r})")
            answer = lab.call("web", "tcp", OUTSIDE6, 9000)
            assert answer and answer.split()[2] in (HOST6, HOST6_2), (
                f"the container called the outside ([{OUTSIDE6}]:9000), which saw "
                f"{_said(answer)}; with add_nat it must see an address of the host's "
                f"uplink ({HOST6} or {HOST6_2})")

    # --------------------------------------------------------------- helpers

    def tag_counts(self, netns: NetNS) -> Counter:
        """How many of Locker's rules carry each tag, counted in the store
        (structural ``dispatch`` rules left out)."""
        return Counter(p.comment for p in self.store.pieces(netns))

    def assert_jumps_once(self, netns: NetNS) -> None:
        counts = dict(self.jump_counts(netns))
        assert set(ENTRY_CHAINS) <= counts.keys(), counts
        # one jump from each chain into each: LOCKER_PREROUTING is entered
        # from PREROUTING and from the nat OUTPUT chain (forwards from the host)
        pairs = Counter(_jump_pair(found) for found in self.store.jumps(netns))
        assert all(n == 1 for n in pairs.values()), pairs


def _jump_pair(found: tuple) -> tuple[str, str]:
    """(from chain, to chain) of a jump as ``stores`` lists it."""
    if isinstance(found[0], dict):                       # nft: (rule, target)
        return found[0]["chain"], found[1]
    words = found[3]                                     # iptables: (table, chain, n, words)
    return found[1], words[words.index("-j") + 1]


def _said(answer: str | None) -> str:
    return f"the answer {answer!r}" if answer else "no answer"


def populate(hook) -> Ruleset:
    """Two projects' nat (P2 isolated), forwards (ranges too) and links in
    the kernel; what lists back."""
    hook.add_nat(bridges=NAT)
    hook.add_forward(forwards=ALL_FORWARDS)
    hook.add_link(links=ALL_LINKS)
    return expected(nat=NAT, forwards=ALL_FORWARDS, links=ALL_LINKS)


def argument(hook_name: str) -> str:
    return {"add_nat": "bridges", "remove_nat": "bridges",
            "add_forward": "forwards", "remove_forward": "forwards",
            "add_link": "links", "remove_link": "links"}[hook_name]


def expected(nat=(), forwards=(), links=()) -> Ruleset:
    """The Ruleset ``list_rules(None)`` must return once these were added."""
    return Ruleset(nat=frozenset(nat), forwards=frozenset(forwards),
                   links=frozenset(links), jumps=True)

