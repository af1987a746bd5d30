"""Conformance suite for Locker link backends.

Every link backend, built in or third-party, proves that it keeps the
contract of the *Link* hooks in ``locker.hookspecs`` by running this suite
against the real kernel. The plugin object is registered alone with
``locker.plugins.new_manager(plugin)`` and driven through
``manager.hook.<name>(...)`` with keyword arguments, exactly as the core
drives it.

How to use it (the whole test module of a backend)::

    from locker.testing.link_suite import LinkBackendTests


    class TestMine(LinkBackendTests):
        backend_name = "mine"       # its entry point in locker.link

``backend_name`` and ``skips`` work as in the firewall suite
(``locker.testing.firewall_suite``): the backend is loaded by name, its
hooks are checked against the contract before any test drives it (every
hook of the role, marked ``@hookimpl``, with the hookspec's arguments,
``locker_api`` declared), and a declared skip skips also under
``LOCKER_TESTS_NO_SKIP=1``. Methods a subclass may override:

``make_backend() -> object``
    A new plugin object (default: ``load(LINK, backend_name)``). Called
    once per test, after the test process has entered the test's network
    namespace, so a backend that opens kernel sockets in its constructor
    opens them there, and one that runs commands (``ip``, ``brctl``) runs
    them there too: child processes inherit the namespace of the thread
    that starts them.
``add_non_bridge(netns, name) -> None`` (optional)
    Create an interface called ``name`` that is not a bridge. The default
    makes a ``dummy`` interface, or a ``veth`` pair (peer ``<name>p``, name
    cut to fit) where the kernel has no dummy driver.
``add_vpn(netns) -> None`` (optional)
    The interfaces the routing tests send routes through: ``tun9``
    (10.8.0.2/24) and ``lan9`` (192.168.5.2/24), both up; made with
    ``add_non_bridge``.

The hooks are called with keyword arguments as the core calls them:
``allocate_subnet`` through the module's ``allocate(hook, name, pool,
reserved)``, ``ensure_bridge`` with ``adopt`` given. What the suite covers:
creating, adopting, reading and removing bridges, and refusing other
tools' interfaces (with the messages of ``locker.link.rules``); the subnet
choice on real routing tables (addresses on down interfaces, routes of
every table and type, default routes and split default routes such as
OpenVPN's def1 pair, a routed 10.0.0.0/8, host and blackhole routes,
reservations, a moved pool); ``subnet_conflicts``; ``route_localnet`` on the bridge only; IPv4
forwarding; and
real traffic (``locker.testing.traffic``) over a bridge the backend made:
two namespaces on it reach each other and the bridge's address, and once
``ensure_ip_forwarding`` ran, a namespace beyond the host is reached
through it. IPv6 (a Bridge with ``network6``): the bridge gets ``::1/64``
(and ``disable_ipv6=0``, ``accept_ra=0`` on it alone), also when it exists
already, ``find_bridge`` reports it, ``ensure_ip_forwarding(ipv6=True)``
turns on ``net.ipv6.conf.all.forwarding`` and nothing else, and IPv6
traffic crosses the bridge and the host.

Everything the suite checks in the kernel it reads with ``ip -j`` inside the
namespace, never through the backend under test. Bridges "of Locker's" that
the suite makes by hand carry the owner mark (``ip link set dev NAME alias
locker:PROJECT``); bridges without it stand for another tool's. The whole suite runs in
the ``netns`` fixture (a fresh network namespace per test, from
``locker.testing.pytest_plugin``): it skips without root or ``ip``.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Any

import pytest

from locker.errors import BackendError
from locker.model import Availability, Bridge, BridgeState
from locker.names import bridge_alias, bridge_name
from locker import plugins
from locker.subnets import DEFAULT_POOL
from locker.testing.contract import BackendSuite
from locker.testing.netns import NetNS
from locker.testing.traffic import Lab

PROJECT = "alpha"
NAME = bridge_name(PROJECT)
#: Aliases that do not make a bridge called NAME Locker's: none at all,
#: another project's mark, another tool's text.
NOT_OURS = (None, bridge_alias("beta"), "made by hand")
BRIDGE = Bridge(PROJECT, NAME, IPv4Network("10.1.1.0/24"))
#: Interfaces of other tools: a plain interface and another bridge.
FOREIGN_PLAIN = "eth9"
FOREIGN_BRIDGE = "lxcbr9"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
IP6_FORWARD = "/proc/sys/net/ipv6/conf/all/forwarding"
BRIDGE6 = Bridge(PROJECT, NAME, IPv4Network("10.1.1.0/24"),
                 network6=IPv6Network("fd00:1234:5678:101::/64"))
ROUTE_LOCALNET = "/proc/sys/net/ipv4/conf/{}/route_localnet"
LONG_NAME = "locker_" + "x" * 9  # 16 characters


# ----------------------------------------------------- calling the backend


def allocate(hook, name: str, pool: IPv4Network = DEFAULT_POOL,
             reserved: tuple[IPv4Network, ...] = ()) -> IPv4Network:
    """``allocate_subnet`` as the core calls it (by default: the default
    pool, nothing reserved)."""
    return hook.allocate_subnet(bridge=name, pool=pool, reserved=list(reserved))


# ----------------------------------------------------- reading the kernel


def ip_json(netns: NetNS, *args: str) -> list[dict[str, Any]]:
    """``ip -j ARGS`` in the namespace, parsed; [] when ip fails (for
    example: no such device)."""
    done = netns.run(["ip", "-j", *args], check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return []
    return json.loads(done.stdout)


def link_of(netns: NetNS, name: str) -> dict[str, Any] | None:
    """The interface's details (``ip -d -j link``), timers left out since
    they change by themselves; None when it does not exist."""
    found = ip_json(netns, "-d", "link", "show", "dev", name)
    return _without_timers(found[0]) if found else None


def raw_link(netns: NetNS, name: str) -> str:
    """``ip -j -d link show dev NAME`` as printed, for byte-wise comparison
    (only for a bridge that is down: an up bridge's timers move)."""
    return netns.run(["ip", "-j", "-d", "link", "show", "dev", name]).stdout


def alias_of(netns: NetNS, name: str) -> str | None:
    link = link_of(netns, name)
    return None if link is None else link.get("ifalias")


def add_bridge(netns: NetNS, name: str, alias: str | None = None) -> None:
    """``ip link add NAME type bridge``, then the alias if one is given: with
    ``bridge_alias(project)`` this is a bridge Locker made in an earlier run,
    without it one that another tool made."""
    netns.run(["ip", "link", "add", name, "type", "bridge"])
    if alias is not None:
        netns.run(["ip", "link", "set", "dev", name, "alias", alias])


def ipv4_of(netns: NetNS, name: str) -> list[str]:
    """The interface's IPv4 addresses as ``ADDRESS/PREFIX``, kernel order."""
    return [f"{a['local']}/{a['prefixlen']}"
            for entry in ip_json(netns, "-4", "addr", "show", "dev", name)
            for a in entry.get("addr_info", [])]


def snapshot(netns: NetNS, *names: str) -> dict[str, Any]:
    """What the kernel has for these interfaces: details and IPv4 addresses."""
    return {name: (link_of(netns, name), ipv4_of(netns, name)) for name in names}


def _without_timers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timers(v) for k, v in value.items() if not k.endswith("_timer")}
    if isinstance(value, list):
        return [_without_timers(v) for v in value]
    return value


def kind_of(netns: NetNS, name: str) -> str | None:
    link = link_of(netns, name)
    return None if link is None else link.get("linkinfo", {}).get("info_kind")


def is_up(netns: NetNS, name: str) -> bool:
    link = link_of(netns, name)
    return link is not None and "UP" in link.get("flags", [])


def read_ip_forward(netns: NetNS) -> str:
    return netns.run(["cat", IP_FORWARD]).stdout.strip()


def route_localnet_of(netns: NetNS, interface: str) -> str:
    return netns.run(["cat", ROUTE_LOCALNET.format(interface)]).stdout.strip()


def write_ip_forward(netns: NetNS, value: str, path: str = IP_FORWARD) -> None:
    """Set the namespace's forwarding (a new namespace may inherit the
    host's value)."""
    netns.run(["sh", "-c", f"echo {value} > {path}"])


def read_sysctl(netns: NetNS, path: str) -> str:
    return netns.run(["cat", path]).stdout.strip()


def global_ipv6(netns: NetNS, name: str) -> list[str]:
    """The interface's global IPv6 addresses as ``ip -j`` shows them."""
    return [f"{a['local']}/{a['prefixlen']}"
            for entry in ip_json(netns, "-6", "addr", "show", "dev", name, "scope", "global")
            for a in entry.get("addr_info", ()) if "local" in a]


class LinkBackendTests(BackendSuite):
    """The conformance tests; see the module docstring for how to subclass."""

    namespace = plugins.LINK

    # ------------------------------------------------ the subclass interface

    def add_non_bridge(self, netns: NetNS, name: str) -> None:
        if netns.run(["ip", "link", "add", name, "type", "dummy"], check=False).returncode:
            peer = name[:14] + "p"
            netns.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer])

    def add_vpn(self, netns: NetNS) -> None:
        """A tunnel-like interface ``tun9`` (10.8.0.2/24, peer 10.8.0.1, up)
        and an up ``lan9`` with 192.168.5.2/24 for gateways; both made with
        ``add_non_bridge``."""
        for name, address in (("tun9", "10.8.0.2/24"), ("lan9", "192.168.5.2/24")):
            self.add_non_bridge(netns, name)
            netns.run(["ip", "addr", "add", address, "dev", name])
            netns.run(["ip", "link", "set", name, "up"])

    # ------------------------------------------------------------- fixtures

    @pytest.fixture
    def foreign(self, netns: NetNS) -> tuple[str, ...]:
        """Another tool's interfaces: a plain one with 10.1.1.0/24 (Locker's
        first choice) and a default route through it, and an up bridge
        holding 10.1.2.1/24."""
        self.add_non_bridge(netns, FOREIGN_PLAIN)
        for argv in (
            ["ip", "addr", "add", "10.1.1.5/24", "dev", FOREIGN_PLAIN],
            ["ip", "link", "set", FOREIGN_PLAIN, "up"],
            ["ip", "route", "add", "default", "via", "10.1.1.254"],
            ["ip", "link", "add", FOREIGN_BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", "10.1.2.1/24", "dev", FOREIGN_BRIDGE],
            ["ip", "link", "set", FOREIGN_BRIDGE, "up"],
        ):
            netns.run(argv)
        return (FOREIGN_PLAIN, FOREIGN_BRIDGE)

    # ---------------------------------------------------------- availability

    def test_availability_is_usable(self, hook) -> None:
        availability = hook.link_availability()
        assert isinstance(availability, Availability)
        assert availability.usable, availability.reason
        assert availability.reason.strip()

    # --------------------------------------------------------- ensure_bridge

    def test_ensure_bridge_creates_it(self, hook, netns: NetNS) -> None:
        state = hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert state == BridgeState(NAME, (IPv4Interface("10.1.1.1/24"),), True)
        assert state.network == BRIDGE.network
        assert kind_of(netns, NAME) == "bridge"
        assert is_up(netns, NAME)
        assert ipv4_of(netns, NAME) == ["10.1.1.1/24"]
        assert alias_of(netns, NAME) == bridge_alias(PROJECT) == "locker:alpha"
        assert hook.find_bridge(name=NAME) == state
        assert state.owned

    def test_a_short_form_bridge_is_marked_with_its_project(self, hook, netns: NetNS) -> None:
        project = "webshopfrontend"
        bridge = Bridge(project, bridge_name(project), IPv4Network("10.1.5.0/24"))
        assert hook.ensure_bridge(bridge=bridge, adopt=False).owned
        assert alias_of(netns, bridge.name) == bridge_alias(project)
        assert hook.find_bridge(name=bridge.name).owned
        assert allocate(hook, bridge.name) == bridge.network
        hook.remove_bridge(name=bridge.name)
        assert link_of(netns, bridge.name) is None

    def test_ensure_bridge_uses_the_bridges_network(self, hook, netns: NetNS) -> None:
        other = Bridge("beta", bridge_name("beta"), IPv4Network("10.200.7.0/24"))
        state = hook.ensure_bridge(bridge=other, adopt=False)
        assert state == BridgeState(other.name, (IPv4Interface("10.200.7.1/24"),), True)
        assert ipv4_of(netns, other.name) == ["10.200.7.1/24"]

    def test_ensure_bridge_is_idempotent(self, hook, netns: NetNS) -> None:
        first = hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        before = snapshot(netns, NAME)
        assert hook.ensure_bridge(bridge=BRIDGE, adopt=False) == first
        assert snapshot(netns, NAME) == before  # same ifindex, one address

    def test_existing_bridge_keeps_its_address(self, hook, netns: NetNS) -> None:
        add_bridge(netns, NAME, bridge_alias(PROJECT))
        netns.run(["ip", "addr", "add", "10.9.9.1/24", "dev", NAME])
        state = hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert state == BridgeState(NAME, (IPv4Interface("10.9.9.1/24"),), True)
        assert ipv4_of(netns, NAME) == ["10.9.9.1/24"]
        assert is_up(netns, NAME), "an existing bridge is brought up"

    def test_existing_bridge_without_address_gets_one(self, hook, netns: NetNS) -> None:
        add_bridge(netns, NAME, bridge_alias(PROJECT))
        index = link_of(netns, NAME)["ifindex"]
        state = hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert state == BridgeState(NAME, (IPv4Interface("10.1.1.1/24"),), True)
        assert link_of(netns, NAME)["ifindex"] == index, "the bridge was re-created"
        assert ipv4_of(netns, NAME) == ["10.1.1.1/24"]

    def test_ensure_bridge_refuses_a_non_bridge(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, NAME)
        before = snapshot(netns, NAME)
        with pytest.raises(BackendError):
            hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert snapshot(netns, NAME) == before

    @pytest.mark.parametrize("alias", NOT_OURS, ids=["no-alias", "other-project", "other-tool"])
    def test_ensure_bridge_refuses_a_bridge_locker_did_not_create(
            self, hook, netns: NetNS, alias: str | None) -> None:
        add_bridge(netns, NAME, alias)
        netns.run(["ip", "addr", "add", "10.9.9.1/24", "dev", NAME])
        before = raw_link(netns, NAME)
        with pytest.raises(BackendError):
            hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert raw_link(netns, NAME) == before, "not brought up, not marked, not changed"
        assert ipv4_of(netns, NAME) == ["10.9.9.1/24"]

    def test_adopt_marks_a_bridge_without_alias(self, hook, netns: NetNS) -> None:
        add_bridge(netns, NAME)  # what a Locker killed at "bridge-created" leaves
        index = link_of(netns, NAME)["ifindex"]
        state = hook.ensure_bridge(bridge=BRIDGE, adopt=True)
        assert state == BridgeState(NAME, (IPv4Interface("10.1.1.1/24"),), True)
        assert alias_of(netns, NAME) == bridge_alias(PROJECT)
        assert link_of(netns, NAME)["ifindex"] == index
        assert hook.ensure_bridge(bridge=BRIDGE, adopt=False) == state

    def test_adopt_keeps_the_address_of_a_bridge_without_alias(self, hook, netns: NetNS) -> None:
        add_bridge(netns, NAME)
        netns.run(["ip", "addr", "add", "10.9.9.1/24", "dev", NAME])
        state = hook.ensure_bridge(bridge=BRIDGE, adopt=True)
        assert state == BridgeState(NAME, (IPv4Interface("10.9.9.1/24"),), True)

    def test_adopt_uses_a_bridge_of_lockers_as_it_is(self, hook, netns: NetNS) -> None:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        before = snapshot(netns, NAME)
        assert hook.ensure_bridge(bridge=BRIDGE, adopt=True).owned
        assert snapshot(netns, NAME) == before

    def test_adopt_creates_a_missing_bridge(self, hook, netns: NetNS) -> None:
        assert hook.ensure_bridge(bridge=BRIDGE, adopt=True).owned
        assert alias_of(netns, NAME) == bridge_alias(PROJECT)

    @pytest.mark.parametrize("alias", NOT_OURS[1:], ids=["other-project", "other-tool"])
    def test_adopt_still_refuses_another_alias(self, hook, netns: NetNS, alias: str) -> None:
        add_bridge(netns, NAME, alias)
        before = raw_link(netns, NAME)
        with pytest.raises(BackendError):
            hook.ensure_bridge(bridge=BRIDGE, adopt=True)
        assert raw_link(netns, NAME) == before

    def test_adopt_still_refuses_a_non_bridge(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, NAME)
        before = snapshot(netns, NAME)
        with pytest.raises(BackendError, match="not a bridge"):
            hook.ensure_bridge(bridge=BRIDGE, adopt=True)
        assert snapshot(netns, NAME) == before

    def test_ensure_bridge_refuses_a_name_not_derived_from_the_project(
            self, hook, netns: NetNS) -> None:
        with pytest.raises(BackendError):
            hook.ensure_bridge(bridge=Bridge("beta", NAME, BRIDGE.network), adopt=False)
        assert link_of(netns, NAME) is None

    # ----------------------------------------------------------- find_bridge

    def test_find_bridge_absent(self, hook) -> None:
        assert hook.find_bridge(name=NAME) is None

    def test_find_bridge_ignores_a_non_bridge(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, NAME)
        assert hook.find_bridge(name=NAME) is None

    def test_find_bridge_reports_what_the_kernel_has(self, hook, netns: NetNS) -> None:
        add_bridge(netns, NAME, bridge_alias(PROJECT))
        assert hook.find_bridge(name=NAME) == BridgeState(NAME, (), False)
        netns.run(["ip", "addr", "add", "10.3.3.1/24", "dev", NAME])
        netns.run(["ip", "addr", "add", "10.4.4.1/16", "dev", NAME])
        netns.run(["ip", "link", "set", NAME, "up"])
        state = hook.find_bridge(name=NAME)
        assert state == BridgeState(
            NAME, (IPv4Interface("10.3.3.1/24"), IPv4Interface("10.4.4.1/16")), True)
        assert state.network == IPv4Network("10.3.3.0/24")

    @pytest.mark.parametrize("alias", NOT_OURS, ids=["no-alias", "other-project", "other-tool"])
    def test_find_bridge_reports_a_bridge_locker_did_not_create(
            self, hook, netns: NetNS, alias: str | None) -> None:
        add_bridge(netns, NAME, alias)
        netns.run(["ip", "addr", "add", "10.3.3.1/24", "dev", NAME])
        before = raw_link(netns, NAME)
        assert hook.find_bridge(name=NAME) == BridgeState(
            NAME, (IPv4Interface("10.3.3.1/24"),), False, owned=False)
        assert raw_link(netns, NAME) == before

    # ------------------------------------------------------- allocate_subnet

    def test_allocate_in_an_empty_namespace(self, hook) -> None:
        assert allocate(hook, NAME) == IPv4Network("10.1.1.0/24")

    def test_allocate_skips_interface_addresses(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, FOREIGN_PLAIN)
        netns.run(["ip", "addr", "add", "10.1.1.77/24", "dev", FOREIGN_PLAIN])
        netns.run(["ip", "addr", "add", "10.1.2.9/23", "dev", FOREIGN_PLAIN])  # 10.1.2-3
        assert allocate(hook, NAME) == IPv4Network("10.1.4.0/24")

    def test_allocate_skips_addresses_on_down_interfaces(self, hook, netns: NetNS) -> None:
        netns.run(["ip", "link", "add", FOREIGN_BRIDGE, "type", "bridge"])
        netns.run(["ip", "addr", "add", "10.1.1.1/24", "dev", FOREIGN_BRIDGE])
        assert allocate(hook, NAME) == IPv4Network("10.1.2.0/24")

    def test_allocate_skips_routes(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, FOREIGN_PLAIN)
        netns.run(["ip", "addr", "add", "10.1.1.5/24", "dev", FOREIGN_PLAIN])
        netns.run(["ip", "link", "set", FOREIGN_PLAIN, "up"])
        netns.run(["ip", "route", "add", "10.1.2.0/24", "via", "10.1.1.254"])
        netns.run(["ip", "route", "add", "10.1.3.0/24", "dev", FOREIGN_PLAIN, "table", "100"])
        assert allocate(hook, NAME) == IPv4Network("10.1.4.0/24")

    def test_allocate_ignores_the_default_route(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, FOREIGN_PLAIN)
        netns.run(["ip", "addr", "add", "192.168.5.2/24", "dev", FOREIGN_PLAIN])
        netns.run(["ip", "link", "set", FOREIGN_PLAIN, "up"])
        netns.run(["ip", "route", "add", "default", "via", "192.168.5.1"])
        netns.run(["ip", "route", "add", "default", "via", "192.168.5.1", "table", "100"])
        assert allocate(hook, NAME) == IPv4Network("10.1.1.0/24")

    def test_allocate_keeps_an_existing_bridges_network(self, hook, netns: NetNS) -> None:
        add_bridge(netns, NAME, bridge_alias(PROJECT))
        netns.run(["ip", "addr", "add", "10.7.7.1/24", "dev", NAME])
        assert allocate(hook, NAME) == IPv4Network("10.7.7.0/24")

    @pytest.mark.parametrize("alias", NOT_OURS[1:], ids=["other-project", "other-tool"])
    def test_allocate_refuses_a_bridge_locker_did_not_create(
            self, hook, netns: NetNS, alias: str | None) -> None:
        add_bridge(netns, NAME, alias)
        netns.run(["ip", "addr", "add", "10.7.7.1/24", "dev", NAME])
        before = raw_link(netns, NAME)
        with pytest.raises(BackendError):
            allocate(hook, NAME)
        assert raw_link(netns, NAME) == before
        assert ipv4_of(netns, NAME) == ["10.7.7.1/24"]

    def test_allocate_leaves_a_bridge_without_alias_to_adoption(self, hook, netns: NetNS) -> None:
        # what a Locker killed between creating the bridge and marking it leaves
        add_bridge(netns, NAME)
        before = raw_link(netns, NAME)
        assert allocate(hook, NAME) == IPv4Network("10.1.1.0/24")
        netns.run(["ip", "addr", "add", "10.7.7.1/24", "dev", NAME])
        assert allocate(hook, NAME) == IPv4Network("10.7.7.0/24")
        assert alias_of(netns, NAME) is None
        netns.run(["ip", "addr", "flush", "dev", NAME])
        assert raw_link(netns, NAME) == before

    def test_allocate_refuses_a_non_bridge(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, NAME)
        with pytest.raises(BackendError, match="not a bridge"):
            allocate(hook, NAME)

    def test_allocate_after_ensure_returns_the_same_network(self, hook) -> None:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert allocate(hook, NAME) == BRIDGE.network
        other = bridge_name("beta")
        assert allocate(hook, other) == IPv4Network("10.1.2.0/24")

    def test_allocate_when_the_pool_is_exhausted(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, FOREIGN_PLAIN)
        netns.run(["ip", "addr", "add", "10.0.0.1/8", "dev", FOREIGN_PLAIN])
        with pytest.raises(BackendError):
            allocate(hook, NAME)

    def test_allocate_changes_nothing(self, hook, netns: NetNS, foreign) -> None:
        before = snapshot(netns, *foreign, NAME)
        routes = ip_json(netns, "-4", "route", "show", "table", "all")
        assert allocate(hook, NAME) == IPv4Network("10.1.3.0/24")
        assert snapshot(netns, *foreign, NAME) == before
        assert ip_json(netns, "-4", "route", "show", "table", "all") == routes

    def test_allocate_ignores_the_def1_pair(self, hook, netns: NetNS) -> None:
        self.add_vpn(netns)
        for half in ("0.0.0.0/1", "128.0.0.0/1"):
            netns.run(["ip", "route", "add", half, "via", "10.8.0.1", "dev", "tun9"])
        netns.run(["ip", "route", "add", "default", "via", "192.168.5.1"])
        assert allocate(hook, NAME) == IPv4Network("10.1.1.0/24")

    def test_allocate_ignores_a_split_default_in_another_table(self, hook, netns: NetNS) -> None:
        for half in ("0.0.0.0/1", "128.0.0.0/1"):  # a kill switch, as VPN clients add
            netns.run(["ip", "route", "add", "unreachable", half, "table", "51820"])
        assert allocate(hook, NAME) == IPv4Network("10.1.1.0/24")

    def test_allocate_counts_a_wide_route_that_is_no_split_default(
            self, hook, netns: NetNS) -> None:
        self.add_vpn(netns)
        netns.run(["ip", "route", "add", "0.0.0.0/1", "via", "10.8.0.1", "dev", "tun9"])
        netns.run(["ip", "route", "add", "default", "via", "192.168.5.1"])
        with pytest.raises(BackendError, match=r"route 0\.0\.0\.0/1 via 10\.8\.0\.1 dev tun9"):
            allocate(hook, NAME)

    def test_allocate_when_10_8_is_routed(self, hook, netns: NetNS) -> None:
        self.add_vpn(netns)
        netns.run(["ip", "route", "add", "10.0.0.0/8", "via", "192.168.5.1"])
        with pytest.raises(BackendError) as caught:
            allocate(hook, NAME)
        message = str(caught.value)
        assert "No free /24 is left" in message
        assert "route 10.0.0.0/8 via 192.168.5.1 dev lan9" in message
        assert "address 10.8.0.2/24 on tun9" in message

    def test_allocate_skips_a_host_route(self, hook, netns: NetNS) -> None:
        self.add_vpn(netns)
        netns.run(["ip", "route", "add", "10.1.1.9/32", "via", "192.168.5.1"])
        netns.run(["ip", "route", "add", "10.1.2.0/32", "dev", "tun9"])
        assert allocate(hook, NAME) == IPv4Network("10.1.3.0/24")

    def test_allocate_skips_blackhole_and_unreachable_routes(self, hook, netns: NetNS) -> None:
        netns.run(["ip", "route", "add", "blackhole", "10.1.1.0/24"])
        netns.run(["ip", "route", "add", "unreachable", "10.1.2.0/24", "table", "7"])
        netns.run(["ip", "route", "add", "prohibit", "10.1.3.0/24"])
        assert allocate(hook, NAME) == IPv4Network("10.1.4.0/24")

    def test_allocate_skips_reserved_networks(self, hook) -> None:
        reserved = (IPv4Network("10.1.1.0/24"), IPv4Network("10.1.2.0/24"))
        assert allocate(hook, NAME, reserved=reserved) == IPv4Network("10.1.3.0/24")

    def test_allocate_counts_a_locker_bridge_that_is_down(self, hook, netns: NetNS) -> None:
        beta = Bridge("beta", bridge_name("beta"), IPv4Network("10.1.1.0/24"))
        hook.ensure_bridge(bridge=beta, adopt=False)
        netns.run(["ip", "link", "set", beta.name, "down"])
        assert allocate(hook, NAME) == IPv4Network("10.1.2.0/24")

    def test_allocate_from_a_moved_pool(self, hook, netns: NetNS) -> None:
        pool = IPv4Network("10.200.0.0/16")
        assert allocate(hook, NAME, pool) == IPv4Network("10.200.0.0/24")
        self.add_non_bridge(netns, FOREIGN_PLAIN)
        netns.run(["ip", "addr", "add", "10.200.0.9/23", "dev", FOREIGN_PLAIN])
        assert allocate(hook, NAME, pool) == IPv4Network("10.200.2.0/24")
        netns.run(["ip", "addr", "add", "10.200.0.9/16", "dev", FOREIGN_PLAIN])
        with pytest.raises(BackendError, match="pool 10.200.0.0 to 10.200.255.0"):
            allocate(hook, NAME, pool)

    def test_an_existing_bridge_keeps_its_subnet_outside_the_pool(self, hook) -> None:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert allocate(hook, NAME, IPv4Network("10.200.0.0/16")) == BRIDGE.network

    # ------------------------------------------------------ subnet_conflicts

    def test_no_conflicts_without_a_bridge(self, hook, netns: NetNS) -> None:
        assert hook.subnet_conflicts(bridge=NAME) == []
        add_bridge(netns, NAME, bridge_alias(PROJECT))
        assert hook.subnet_conflicts(bridge=NAME) == []

    def test_no_conflicts_for_a_bridge_alone(self, hook, netns: NetNS) -> None:
        self.add_vpn(netns)
        for half in ("0.0.0.0/1", "128.0.0.0/1"):
            netns.run(["ip", "route", "add", half, "via", "10.8.0.1", "dev", "tun9"])
        netns.run(["ip", "route", "add", "default", "via", "192.168.5.1"])
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        netns.run(["ip", "route", "add", "10.1.1.0/25", "dev", NAME, "table", "5"])
        assert hook.subnet_conflicts(bridge=NAME) == []

    def test_conflicts_name_what_overlaps_the_bridge(self, hook, netns: NetNS) -> None:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        self.add_vpn(netns)
        netns.run(["ip", "addr", "add", "10.1.0.5/16", "dev", "tun9"])
        netns.run(["ip", "route", "add", "10.1.1.128/25", "via", "192.168.5.1"])
        netns.run(["ip", "route", "add", "blackhole", "10.1.1.64/26", "table", "100"])
        netns.run(["ip", "route", "add", "10.1.2.0/24", "via", "192.168.5.1"])  # not overlapping
        found = hook.subnet_conflicts(bridge=NAME)
        assert sorted(found) == sorted([
            "address 10.1.0.5/16 on tun9",
            "route 10.1.1.128/25 via 192.168.5.1 dev lan9",
            "route blackhole 10.1.1.64/26 table 100",
        ]), found
        assert IPv4Network("10.1.2.0/24") not in found

    # --------------------------------------------------------- remove_bridge

    def test_remove_bridge_removes_it(self, hook, netns: NetNS) -> None:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        hook.remove_bridge(name=NAME)
        assert link_of(netns, NAME) is None
        assert hook.find_bridge(name=NAME) is None

    def test_remove_bridge_is_idempotent(self, hook, netns: NetNS) -> None:
        hook.remove_bridge(name=NAME)  # never existed
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        hook.remove_bridge(name=NAME)
        hook.remove_bridge(name=NAME)
        assert link_of(netns, NAME) is None

    def test_remove_bridge_refuses_a_non_bridge(self, hook, netns: NetNS) -> None:
        self.add_non_bridge(netns, NAME)
        netns.run(["ip", "addr", "add", "10.1.1.1/24", "dev", NAME])
        before = snapshot(netns, NAME)
        with pytest.raises(BackendError):
            hook.remove_bridge(name=NAME)
        assert snapshot(netns, NAME) == before

    @pytest.mark.parametrize("alias", NOT_OURS, ids=["no-alias", "other-project", "other-tool"])
    def test_remove_bridge_leaves_a_bridge_locker_did_not_create(
            self, hook, netns: NetNS, alias: str | None) -> None:
        add_bridge(netns, NAME, alias)
        netns.run(["ip", "addr", "add", "10.1.1.1/24", "dev", NAME])
        before = raw_link(netns, NAME)
        with pytest.raises(BackendError):
            hook.remove_bridge(name=NAME)
        assert raw_link(netns, NAME) == before
        assert ipv4_of(netns, NAME) == ["10.1.1.1/24"]

    def test_remove_bridge_removes_one_marked_by_an_earlier_run(self, hook, netns: NetNS) -> None:
        add_bridge(netns, NAME, bridge_alias(PROJECT))
        hook.remove_bridge(name=NAME)
        assert link_of(netns, NAME) is None

    def test_bridge_with_ports_can_be_removed(self, hook, netns: NetNS) -> None:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        self.add_non_bridge(netns, FOREIGN_PLAIN)
        netns.run(["ip", "link", "set", FOREIGN_PLAIN, "master", NAME])
        hook.remove_bridge(name=NAME)
        assert link_of(netns, NAME) is None
        port = link_of(netns, FOREIGN_PLAIN)
        assert port is not None and "master" not in port, "the port itself is kept"

    # ------------------------------------------------- other tools' interfaces

    def test_foreign_interfaces_are_untouched(self, hook, netns: NetNS, foreign) -> None:
        before = snapshot(netns, *foreign)
        bridge = Bridge(PROJECT, NAME, allocate(hook, NAME))
        assert bridge.network == IPv4Network("10.1.3.0/24")
        assert hook.ensure_bridge(bridge=bridge, adopt=False).network == bridge.network
        assert hook.ensure_bridge(bridge=bridge, adopt=False).network == bridge.network
        assert hook.find_bridge(name=FOREIGN_BRIDGE) == BridgeState(
            FOREIGN_BRIDGE, (IPv4Interface("10.1.2.1/24"),), True, owned=False)
        assert snapshot(netns, *foreign) == before
        hook.remove_bridge(name=NAME)
        assert snapshot(netns, *foreign) == before
        assert link_of(netns, NAME) is None

    # ------------------------------------------------------- the messages

    @pytest.mark.parametrize("call", [
        lambda hook: allocate(hook, LONG_NAME),
        lambda hook: hook.find_bridge(name=LONG_NAME),
        lambda hook: hook.remove_bridge(name=LONG_NAME),
        lambda hook: hook.subnet_conflicts(bridge=LONG_NAME),
    ], ids=["allocate", "find", "remove", "conflicts"])
    def test_a_name_over_15_characters(self, hook, call) -> None:
        with pytest.raises(BackendError, match=r"has 16 characters but Linux allows 1 to 15"):
            call(hook)

    @pytest.mark.parametrize("name", ["bad/name", "bad name", "a:b", "", ".."])
    def test_names_linux_refuses(self, hook, name: str) -> None:
        """Hooks that take a bare name refuse one Linux cannot hold (a Bridge
        with such a name cannot even be made: ``locker.model``)."""
        for call in (lambda: hook.find_bridge(name=name), lambda: hook.remove_bridge(name=name),
                     lambda: hook.subnet_conflicts(bridge=name)):
            with pytest.raises(BackendError, match="interface name|Linux allows"):
                call()

    def test_non_bridge_message_names_it(self, hook, netns: NetNS) -> None:
        netns.run(["ip", "link", "add", NAME, "type", "veth", "peer", "name", "peer0"])
        with pytest.raises(BackendError, match=rf"'{NAME}' is a veth interface, not a bridge"):
            hook.ensure_bridge(bridge=BRIDGE, adopt=False)

    @pytest.mark.parametrize("call", [
        lambda hook: hook.ensure_bridge(bridge=BRIDGE, adopt=False),
        lambda hook: hook.remove_bridge(name=NAME),
    ], ids=["ensure", "remove"])
    def test_a_bridge_locker_did_not_create_is_named_with_the_fix(self, hook, netns: NetNS,
                                                                  call) -> None:
        add_bridge(netns, NAME)
        with pytest.raises(BackendError) as caught:
            call(hook)
        message = str(caught.value)
        assert message.startswith(f"A bridge named '{NAME}' exists that Locker did not create "
                                  "(it has no alias, Locker marks its own 'locker:alpha'):")
        assert message.endswith(f"`ip link set dev {NAME} alias locker:alpha`).")
        assert "\n" not in message

    @pytest.mark.parametrize("call", [
        lambda hook: allocate(hook, NAME),
        lambda hook: hook.remove_bridge(name=NAME),
        lambda hook: hook.ensure_bridge(bridge=BRIDGE, adopt=True),
    ], ids=["allocate", "remove", "adopt"])
    def test_the_message_quotes_a_foreign_alias(self, hook, netns: NetNS, call) -> None:
        add_bridge(netns, NAME, "made by hand")
        with pytest.raises(BackendError, match="its alias is 'made by hand'"):
            call(hook)

    # ------------------------------------------------------- route_localnet

    def test_route_localnet_is_set_on_the_bridge_only(self, hook, netns: NetNS) -> None:
        """Forwards reached at 127.0.0.1 need it on the bridge; never on all
        or default, where it would open every interface (CVE-2020-8558)."""
        state = hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert route_localnet_of(netns, NAME) == "1", (
            f"ensure_bridge must turn on route_localnet of {NAME}")
        for other in ("all", "default", "lo"):
            assert route_localnet_of(netns, other) == "0", (
                f"ensure_bridge turned on route_localnet of {other!r}: only the bridge's")
        assert state.route_localnet

    def test_a_bridge_without_route_localnet_is_found_so_and_repaired(
            self, hook, netns: NetNS) -> None:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        netns.run(["sh", "-c", f"echo 0 > {ROUTE_LOCALNET.format(NAME)}"])
        assert not hook.find_bridge(name=NAME).route_localnet, (
            "find_bridge must report route_localnet=False when it is off")
        assert hook.ensure_bridge(bridge=BRIDGE, adopt=False).route_localnet
        assert route_localnet_of(netns, NAME) == "1"
        assert route_localnet_of(netns, "all") == "0"

    # -------------------------------------------------------- ip forwarding

    def test_ensure_ip_forwarding(self, hook, netns: NetNS) -> None:
        write_ip_forward(netns, "0")
        assert hook.ensure_ip_forwarding(ipv6=False) is True
        assert read_ip_forward(netns) == "1"
        assert hook.ensure_ip_forwarding(ipv6=False) is False
        assert read_ip_forward(netns) == "1"

    def test_ip_forwarding_already_on(self, hook, netns: NetNS) -> None:
        write_ip_forward(netns, "1")
        assert hook.ensure_ip_forwarding(ipv6=False) is False
        assert read_ip_forward(netns) == "1"

    # ----------------------------------------------------------------- IPv6

    def test_an_ipv6_bridge_gets_its_64(self, hook, netns: NetNS) -> None:
        accept_ra = read_sysctl(netns, "/proc/sys/net/ipv6/conf/all/accept_ra")
        state = hook.ensure_bridge(bridge=BRIDGE6, adopt=False)
        assert global_ipv6(netns, NAME) == ["fd00:1234:5678:101::1/64"]
        assert read_sysctl(netns, f"/proc/sys/net/ipv6/conf/{NAME}/disable_ipv6") == "0"
        assert read_sysctl(netns, f"/proc/sys/net/ipv6/conf/{NAME}/accept_ra") == "0"
        assert read_sysctl(netns, "/proc/sys/net/ipv6/conf/all/accept_ra") == accept_ra
        assert state.addresses6 == (IPv6Interface("fd00:1234:5678:101::1/64"),)
        assert hook.find_bridge(name=NAME).addresses6 == state.addresses6
        hook.ensure_bridge(bridge=BRIDGE6, adopt=False)  # again: nothing added twice
        assert global_ipv6(netns, NAME) == ["fd00:1234:5678:101::1/64"]

    def test_an_existing_bridge_gets_ipv6_when_its_project_turns_it_on(
            self, hook, netns: NetNS) -> None:
        assert hook.ensure_bridge(bridge=BRIDGE, adopt=False).addresses6 == ()
        assert global_ipv6(netns, NAME) == []
        hook.ensure_bridge(bridge=BRIDGE6, adopt=False)
        assert global_ipv6(netns, NAME) == ["fd00:1234:5678:101::1/64"]
        (entry,) = ip_json(netns, "-4", "addr", "show", "dev", NAME)
        assert [a["local"] for a in entry["addr_info"]] == ["10.1.1.1"]

    def test_ipv6_forwarding_only_when_asked(self, hook, netns: NetNS) -> None:
        write_ip_forward(netns, "1")
        write_ip_forward(netns, "0", IP6_FORWARD)
        assert hook.ensure_ip_forwarding(ipv6=False) is False
        assert read_sysctl(netns, IP6_FORWARD) == "0"
        assert hook.ensure_ip_forwarding(ipv6=True) is True
        assert read_sysctl(netns, IP6_FORWARD) == "1"
        assert hook.ensure_ip_forwarding(ipv6=True) is False

    def test_ipv6_traffic_passes_over_the_backends_bridge(self, hook, netns: NetNS) -> None:
        hook.ensure_bridge(bridge=BRIDGE6, adopt=False)
        gateway6 = str(BRIDGE6.gateway6)
        web6, db6 = "fd00:1234:5678:101::2", "fd00:1234:5678:101::3"
        with Lab(netns) as lab:
            lab.wire("web", "vweb", None, ["10.1.1.2/24", f"{web6}/64"], master=NAME,
                     gateway6=gateway6)
            lab.wire("db", "vdb", None, ["10.1.1.3/24", f"{db6}/64"], master=NAME)
            lab.wire("outside", "uplink", None, ["2001:db8:9::2/64"],
                     host_address6="2001:db8:9::1/64",
                     routes=["fd00:1234:5678:101::/64 via 2001:db8:9::1"])
            lab.serve("db", "db", "tcp/5432")
            lab.serve("host", "host", "tcp/7000")
            lab.serve("outside", "outside", "tcp/9000")
            for address, port, who in ((db6, 5432, "db"), (gateway6, 7000, "host")):
                answer = lab.call("web", "tcp", address, port)
                assert answer and answer.split() == [who, str(port), web6], (
                    f"over the bridge {NAME}, {web6} calling [{address}]:{port} got "
                    f"{answer!r}")
            hook.ensure_ip_forwarding(ipv6=True)
            answer = lab.call("web", "tcp", "2001:db8:9::2", 9000)
            assert answer and answer.split() == ["outside", "9000", web6], (
                f"after ensure_ip_forwarding(ipv6=True), {web6} calling [2001:db8:9::2]:9000 "
                f"through the host got {answer!r}")

    # -------------------------------------------------------------- traffic

    def test_traffic_passes_over_the_backends_bridge(self, hook, netns: NetNS) -> None:
        write_ip_forward(netns, "0")
        state = hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        gateway = str(BRIDGE.gateway)
        with Lab(netns) as lab:
            lab.wire("web", "vweb", None, ["10.1.1.2/24"], gateway=gateway, master=NAME)
            lab.wire("db", "vdb", None, ["10.1.1.3/24"], gateway=gateway, master=NAME)
            lab.wire("outside", "uplink", "192.0.2.1/24", ["192.0.2.2/24"],
                     routes=["10.1.1.0/24 via 192.0.2.1"])
            lab.serve("db", "db", "tcp/5432")
            lab.serve("host", "host", "tcp/7000")
            lab.serve("outside", "outside", "tcp/9000")
            for address, port, who in (("10.1.1.3", 5432, "db"), (gateway, 7000, "host")):
                answer = lab.call("web", "tcp", address, port)
                assert answer and answer.split()[0] == who, (
                    f"over the bridge {NAME} ({state}), 10.1.1.2 calling {address}:{port} "
                    f"got {answer!r}; the bridge must join what is plugged into it")
            hook.ensure_ip_forwarding(ipv6=False)
            answer = lab.call("web", "tcp", "192.0.2.2", 9000)
            assert answer and answer.split() == ["outside", "9000", "10.1.1.2"], (
                f"after ensure_ip_forwarding, 10.1.1.2 calling 192.0.2.2:9000 through the "
                f"host got {answer!r}")
