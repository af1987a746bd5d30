"""The values hooks take check themselves: an invalid one cannot be made,
so no hook and no backend ever sees one."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from locker.errors import Invalid
from locker.model import UNKNOWN_NETWORK, Bridge, Forward, Link
from locker.project import PortSpec

IP = IPv4Address("10.1.1.2")
PEER = IPv4Address("10.1.1.3")
NET = IPv4Network("10.1.1.0/24")


def test_valid_values_are_made() -> None:
    assert Bridge("shop", "locker_shop", NET).gateway == IPv4Address("10.1.1.1")
    assert Bridge("shop", "locker_shop", UNKNOWN_NETWORK).network == UNKNOWN_NETWORK
    assert Forward("shop", "web", 65535, IP, 1, "udp", IPv4Address("192.0.2.1")).host_port == 65535
    assert Link("shop", "web", IP, "db", PEER).peer == "db"


def test_a_range_forward_is_shown_sorted_and_compared_as_a_range() -> None:
    one = Forward("shop", "web", 8000, IP, 9000)
    wide = Forward("shop", "web", 8000, IP, 9000, count=11)
    assert str(wide) == "8000-8010/tcp -> 10.1.1.2:9000-9010"
    assert (wide.host_end, wide.container_end) == (8010, 9010)
    assert str(one) == "8000/tcp -> 10.1.1.2:9000" and one != wide
    assert sorted([wide, one], key=Forward.sort_key) == [one, wide]
    assert Forward("shop", "web", 65535, IP, 1, count=1).host_end == 65535


def test_port_ranges_clash_when_they_overlap() -> None:
    wide = PortSpec(8000, 9000, count=11)
    assert wide.clashes_with(PortSpec(8010, 1)) and PortSpec(7990, 1, count=11).clashes_with(wide)
    assert not wide.clashes_with(PortSpec(8011, 1, count=5))
    assert not wide.clashes_with(PortSpec(7999, 1)) and not wide.clashes_with(
        PortSpec(8005, 1, "udp"))
    assert wide.clashes_with(PortSpec(8005, 1, "tcp", IPv4Address("192.0.2.1")))
    assert not PortSpec(8000, 1, host_ip=IPv4Address("192.0.2.2"), count=3).clashes_with(
        PortSpec(8001, 1, host_ip=IPv4Address("192.0.2.1")))


@pytest.mark.parametrize("make, says", [
    (lambda: Forward("shop", "web", 0, IP, 80), "host port 0 is out of range"),
    (lambda: Forward("shop", "web", 8080, IP, 65536), "container port 65536 is out of range"),
    (lambda: Forward("shop", "web", True, IP, 80), "host port True is not a number"),
    (lambda: Forward("shop", "web", "8080", IP, 80), "host port '8080' is not a number"),
    (lambda: Forward("shop", "web", 8080, IP, 80, "sctp"), "protocol 'sctp'"),
    (lambda: Forward("shop", "web", 8080, "10.1.1.2", 80), "container address '10.1.1.2'"),
    (lambda: Forward("shop", "web", 8080, IP, 80, "tcp", "0.0.0.0"), "host address '0.0.0.0'"),
    (lambda: Forward("shop", "we b", 8080, IP, 80), "container 'we b'"),
    (lambda: Forward("sh:op", "web", 8080, IP, 80), "project 'sh:op'"),
    (lambda: Link("shop", "web", IP, "db;drop", PEER), "peer 'db;drop'"),
    (lambda: Link("shop", "web", IP, "db", None), "peer address None"),
    (lambda: Bridge("shop", "locker shop", NET), "bridge name 'locker shop'"),
    (lambda: Bridge("shop", "locker_shop_much_too_long", NET), "bridge name"),
    (lambda: Bridge("shop", "locker_shop", NET, isolated="yes"), "bridge isolated 'yes'"),
    (lambda: Bridge("shop", "../x", NET), "bridge name '../x'"),
    (lambda: Bridge("shop", "locker_shop", "10.1.1.0/24"), "bridge network"),
    (lambda: PortSpec(8080, 0), "CONTAINER_PORT 0 is out of range"),
    (lambda: Forward("shop", "web", 65530, IP, 80, count=7), "port range 65530-65536 ends "
                                                            "after 65535"),
    (lambda: Forward("shop", "web", 80, IP, 65535, count=2), "port range 65535-65536"),
    (lambda: Forward("shop", "web", 80, IP, 80, count=0), "port count 0 is not a number"),
    (lambda: Forward("shop", "web", 80, IP, 80, count=True), "port count True"),
    (lambda: PortSpec(65000, 80, count=600), "port range 65000-65599 ends after 65535"),
    (lambda: PortSpec(8080, 80, "icmp"), "protocol 'icmp'"),
])
def test_an_invalid_value_cannot_be_made(make, says: str) -> None:
    with pytest.raises(Invalid) as caught:
        make()
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)  # backends' parsers treat it as unreadable
