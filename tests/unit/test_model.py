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
    (lambda: Bridge("shop", "../x", NET), "bridge name '../x'"),
    (lambda: Bridge("shop", "locker_shop", "10.1.1.0/24"), "bridge network"),
    (lambda: PortSpec(8080, 0), "CONTAINER_PORT 0 is out of range"),
    (lambda: PortSpec(8080, 80, "icmp"), "protocol 'icmp'"),
])
def test_an_invalid_value_cannot_be_made(make, says: str) -> None:
    with pytest.raises(Invalid) as caught:
        make()
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)  # backends' parsers treat it as unreadable
