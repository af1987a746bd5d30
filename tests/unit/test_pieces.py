"""A project's network rules rebuilt from the pieces a backend found."""

from ipaddress import IPv4Network

from locker.model import UNKNOWN_NETWORK, Bridge
from locker.pieces import nat_bridges

NET = IPv4Network("10.1.1.0/24")


def test_all_three_pieces_are_one_complete_bridge() -> None:
    keys = {("masquerade", "shop", NET), ("outbound", "shop", "locker_shop"),
            ("replies", "shop", "locker_shop")}
    assert nat_bridges(keys) == ({Bridge("shop", "locker_shop", NET)}, set())


def test_missing_pieces_are_partial_and_a_missing_masquerade_has_no_network() -> None:
    assert nat_bridges({("masquerade", "shop", NET)}) == (
        set(), {Bridge("shop", "locker_shop", NET)})
    assert nat_bridges({("outbound", "shop", "locker_shop")}) == (
        set(), {Bridge("shop", "locker_shop", UNKNOWN_NETWORK)})
