"""The built-in netlink link backend: the link conformance suite, plus what
is particular to it (its pyroute2 adapter, its error messages)."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from ipaddress import IPv4Interface, IPv4Network

import pytest

from locker import hookimpl
from locker.errors import BackendError
from locker.link._rtnl import Rtnl, RtnlError
from locker.link.netlink import NetlinkBackend
from locker.plugins import new_manager
from locker.names import bridge_alias
from locker.subnets import Address, Route
from locker.testing.link_suite import (BRIDGE, NAME, LinkBackendTests, add_bridge, alias_of,
                                       ip_json, link_of)
from locker.testing.netns import NetNS


@pytest.mark.privileged
class TestNetlinkConformance(LinkBackendTests):
    def make_backend(self) -> object:
        return NetlinkBackend()


def test_importing_locker_does_not_import_pyroute2() -> None:
    code = ("import sys, locker, locker.plugins, locker.link.netlink; "
            "sys.exit('pyroute2' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.fixture
def hook(netns: NetNS):
    return new_manager(NetlinkBackend()).hook


@pytest.mark.privileged
class TestAdapter:
    def test_reads_links_addresses_and_routes(self, netns: NetNS) -> None:
        netns.run(["ip", "link", "add", "br7", "type", "bridge"])
        netns.run(["ip", "addr", "add", "10.5.5.1/24", "dev", "br7"])
        netns.run(["ip", "link", "set", "br7", "up"])
        netns.run(["ip", "route", "add", "10.6.0.0/16", "via", "10.5.5.9", "table", "42"])
        with Rtnl() as rtnl:
            link = rtnl.find_link("br7")
            assert link is not None and link.kind == "bridge" and link.up
            assert link.index == link_of(netns, "br7")["ifindex"]
            assert rtnl.find_link("nothere") is None
            assert {"lo", "br7"} <= {info.name for info in rtnl.links()}
            assert rtnl.ipv4_addresses(link.index) == [IPv4Interface("10.5.5.1/24")]
            assert IPv4Network("10.5.5.0/24") in rtnl.ipv4_address_networks()
            destinations = rtnl.ipv4_route_destinations()
            assert IPv4Network("10.6.0.0/16") in destinations
            assert IPv4Network("0.0.0.0/0") not in destinations

    def test_reads_routes_as_facts(self, netns: NetNS) -> None:
        netns.run(["ip", "link", "add", "eth7", "type", "veth", "peer", "name", "eth7p"])
        netns.run(["ip", "addr", "add", "10.5.5.2/24", "dev", "eth7"])
        netns.run(["ip", "addr", "add", "10.9.0.1", "peer", "10.9.0.2/32", "dev", "eth7"])
        netns.run(["ip", "link", "set", "eth7", "up"])
        netns.run(["ip", "route", "add", "default", "via", "10.5.5.1"])
        netns.run(["ip", "route", "add", "10.6.0.0/16", "nexthop", "via", "10.5.5.8",
                   "nexthop", "via", "10.5.5.9"])
        netns.run(["ip", "route", "add", "blackhole", "10.7.0.0/16", "table", "300"])
        netns.run(["ip", "route", "add", "10.8.1.1", "dev", "eth7"])
        with Rtnl() as rtnl:
            routes = rtnl.ipv4_routes()
            facts = rtnl.ipv4_address_facts()
        assert Route(IPv4Network("0.0.0.0/0"), gateways=("10.5.5.1",), devices=("eth7",)) in routes
        assert Route(IPv4Network("10.6.0.0/16"), gateways=("10.5.5.8", "10.5.5.9"),
                     devices=("eth7", "eth7")) in routes
        assert Route(IPv4Network("10.7.0.0/16"), table="300", kind="blackhole") in routes
        assert Route(IPv4Network("10.8.1.1/32"), devices=("eth7",)) in routes
        assert Route(IPv4Network("10.5.5.2/32"), table="local", kind="local",
                     devices=("eth7",), protocol="kernel") in routes
        assert Address("eth7", IPv4Interface("10.9.0.1/32"), IPv4Interface("10.9.0.2/32")) in facts
        assert Address("lo", IPv4Interface("127.0.0.1/8")) in facts

    def test_reads_and_sets_the_alias(self, netns: NetNS) -> None:
        add_bridge(netns, "br7")
        with Rtnl() as rtnl:
            link = rtnl.find_link("br7")
            assert link.alias is None
            rtnl.set_alias(link.index, "locker:seven")
            assert rtnl.find_link("br7").alias == "locker:seven"
        assert alias_of(netns, "br7") == "locker:seven"

    def test_netlink_errors_become_rtnl_errors(self, netns: NetNS) -> None:
        with Rtnl() as rtnl:
            with pytest.raises(RtnlError) as caught:
                rtnl.delete_link(999_999)
        assert caught.value.errno == errno.ENODEV

    def test_address_gets_a_broadcast(self, hook, netns: NetNS) -> None:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        (entry,) = ip_json(netns, "-4", "addr", "show", "dev", NAME)
        (address,) = entry["addr_info"]
        assert address["broadcast"] == "10.1.1.255"


@pytest.mark.privileged
class TestNetlinkErrors:
    def test_without_privileges_the_error_says_to_run_as_root(self, netns: NetNS) -> None:
        # A real EPERM/EACCES from the kernel: the same calls, run as nobody.
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to run a check as nobody")
        code = """
from ipaddress import IPv4Network
from locker import hookimpl
from locker.errors import BackendError
from locker.link.netlink import NetlinkBackend
from locker.model import Bridge
backend = NetlinkBackend()
print(backend.link_availability().usable)
for call in (lambda: backend.ensure_bridge(Bridge("p", "locker_p", IPv4Network("10.1.1.0/24")), False),
             lambda: backend.ensure_ip_forwarding(False)):
    try:
        call()
        print("no error")
    except BackendError as exc:
        print(exc)
"""
        done = netns.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", code], check=False)
        assert done.returncode == 0, done.stderr
        usable, bridge_error, forward_error = done.stdout.splitlines()
        assert usable == "True"
        assert bridge_error.startswith("Cannot set up bridge 'locker_p': Operation not permitted")
        assert bridge_error.endswith("run Locker as root (it needs CAP_NET_ADMIN).")
        assert "run Locker as root" in forward_error
        assert link_of(netns, "locker_p") is None


@pytest.mark.privileged
class TestNetlinkFailures:
    def test_a_bridge_created_by_a_failed_call_is_removed(self, hook, netns: NetNS,
                                                          monkeypatch) -> None:
        # The kernel accepts any address on a bridge, so the failure is injected
        # at the adapter; creating and deleting the bridge stay real.
        def refuse(self, index, interface):
            raise RtnlError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(Rtnl, "add_ipv4_address", refuse)
        with pytest.raises(BackendError, match=rf"Cannot set up bridge '{NAME}': "
                                               "the kernel said: Invalid argument"):
            hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert link_of(netns, NAME) is None

    def test_a_bridge_whose_alias_cannot_be_set_is_removed(self, hook, netns: NetNS,
                                                           monkeypatch) -> None:
        def refuse(self, index, alias):
            raise RtnlError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(Rtnl, "set_alias", refuse)
        with pytest.raises(BackendError, match=rf"Cannot set up bridge '{NAME}'"):
            hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert link_of(netns, NAME) is None

    def test_an_existing_bridge_is_kept_when_a_call_fails(self, hook, netns: NetNS,
                                                          monkeypatch) -> None:
        add_bridge(netns, NAME, bridge_alias("alpha"))

        def refuse(self, index, interface):
            raise RtnlError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(Rtnl, "add_ipv4_address", refuse)
        with pytest.raises(BackendError):
            hook.ensure_bridge(bridge=BRIDGE, adopt=False)
        assert link_of(netns, NAME) is not None


def test_a_privileged_test_runs_alone_in_its_namespace_with_all_its_threads(netns) -> None:
    """Each test using ``netns`` is a process of its own, entered while it
    has one thread: a thread it starts is in the test's namespace."""
    import os
    import threading

    from locker.testing.netns import current_netns_inode

    assert threading.active_count() == 1
    assert os.getpid() != PYTEST_PID  # a child of the pytest process
    found: list[int] = []
    worker = threading.Thread(target=lambda: found.append(current_netns_inode()))
    worker.start()
    worker.join()
    assert found == [os.stat(netns.path).st_ino]


PYTEST_PID = __import__("os").getpid()


def test_a_failed_rollback_is_reported_not_hidden(netns: NetNS, monkeypatch) -> None:
    def refuse(self, *args):
        raise RtnlError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(Rtnl, "set_alias", refuse)
    monkeypatch.setattr(Rtnl, "delete_link", lambda self, index: (_ for _ in ()).throw(
        RtnlError(errno.EBUSY, "Device or resource busy")))
    hook = new_manager(NetlinkBackend()).hook
    with pytest.raises(BackendError, match="deleting the half-made bridge failed too") as caught:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
    assert f"ip link delete {NAME}" in str(caught.value)
    assert link_of(netns, NAME) is not None  # it is there, and the message says so


# --------------------------------- broken backends the link suite must catch

class DownBridge(NetlinkBackend):
    """Makes the bridge, then leaves it down while saying it is up: its
    ports forward nothing."""

    @hookimpl
    def ensure_bridge(self, bridge, adopt):
        state = super().ensure_bridge(bridge=bridge, adopt=adopt)
        subprocess.run(["ip", "link", "set", "dev", bridge.name, "down"], check=True)
        return state


class NoForwarding(NetlinkBackend):
    """Says it turned IPv4 forwarding on and does nothing."""

    @hookimpl
    def ensure_ip_forwarding(self):
        return True


class LinkSuite(LinkBackendTests):  # not collected: its name is no Test*
    def __init__(self, backend: object) -> None:
        self.made = backend

    def make_backend(self) -> object:
        return self.made


@pytest.mark.privileged
@pytest.mark.parametrize("broken, said", [
    (DownBridge, r"over the bridge locker_alpha .*10\.1\.1\.2 calling 10\.1\.1\.3:5432 got None;"
                 r" the bridge must join what is plugged into it"),
    (NoForwarding, r"after ensure_ip_forwarding, 10\.1\.1\.2 calling 192\.0\.2\.2:9000 through"
                   r" the host got None"),
])
def test_a_backend_that_passes_no_packet_fails_the_traffic_test(netns: NetNS, broken,
                                                                 said: str) -> None:
    backend = broken()
    with pytest.raises(AssertionError, match=said):
        LinkSuite(backend).test_traffic_passes_over_the_backends_bridge(
            new_manager(backend).hook, netns)


@pytest.mark.privileged
def test_the_traffic_test_passes_the_backend_the_broken_ones_are_copies_of(netns: NetNS) -> None:
    backend = NetlinkBackend()
    LinkSuite(backend).test_traffic_passes_over_the_backends_bridge(
        new_manager(backend).hook, netns)
