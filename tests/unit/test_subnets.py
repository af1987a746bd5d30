"""The subnet allocator: the first /24 of the pool (by default
10.1.1.0-10.255.255.0) that overlaps none of the networks in use; which
networks are in use; what overlaps an existing bridge."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network

import pytest

from locker.errors import BackendError
from locker.subnets import (DEFAULT_POOL, POOL_FIRST, POOL_LAST, Address, Route, allocate,
                            conflicts, first_free, pool_bounds, pool_problem, table_number,
                            used_networks)


def nets(*texts: str) -> list[IPv4Network]:
    return [IPv4Network(text) for text in texts]


def test_pool_bounds() -> None:
    assert POOL_FIRST == IPv4Network("10.1.1.0/24")
    assert POOL_LAST == IPv4Network("10.255.255.0/24")


def test_nothing_used_gives_the_first_of_the_pool() -> None:
    assert first_free([]) == IPv4Network("10.1.1.0/24")


def test_accepts_any_iterable() -> None:
    assert first_free(iter(nets("10.1.1.0/24"))) == IPv4Network("10.1.2.0/24")


def test_skips_an_exact_match() -> None:
    assert first_free(nets("10.1.1.0/24")) == IPv4Network("10.1.2.0/24")


def test_skips_consecutive_networks_in_any_order() -> None:
    used = nets("10.1.3.0/24", "10.1.1.0/24", "10.1.2.0/24")
    assert first_free(used) == IPv4Network("10.1.4.0/24")


def test_takes_the_first_gap() -> None:
    used = nets("10.1.1.0/24", "10.1.3.0/24")
    assert first_free(used) == IPv4Network("10.1.2.0/24")


def test_duplicates_and_nested_networks() -> None:
    used = nets("10.1.1.0/24", "10.1.1.0/24", "10.1.0.0/16", "10.1.7.0/24")
    assert first_free(used) == IPv4Network("10.2.0.0/24")


def test_a_network_bigger_than_a_24() -> None:
    assert first_free(nets("10.1.0.0/22")) == IPv4Network("10.1.4.0/24")
    assert first_free(nets("10.0.0.0/9")) == IPv4Network("10.128.0.0/24")


def test_a_small_network_blocks_its_whole_24() -> None:
    assert first_free(nets("10.1.1.200/32")) == IPv4Network("10.1.2.0/24")
    assert first_free(nets("10.1.1.128/25")) == IPv4Network("10.1.2.0/24")
    assert first_free(nets("10.1.1.0/32", "10.1.2.255/32")) == IPv4Network("10.1.3.0/24")


def test_host_routes_outside_the_candidate_do_not_matter() -> None:
    assert first_free(nets("10.1.2.1/32", "10.1.3.0/32")) == IPv4Network("10.1.1.0/24")


def test_networks_outside_10_8_are_ignored() -> None:
    used = nets("192.168.1.0/24", "172.16.0.0/12", "127.0.0.0/8", "9.255.255.255/32",
                "11.0.0.0/8")
    assert first_free(used) == IPv4Network("10.1.1.0/24")


def test_a_network_straddling_the_pool_start() -> None:
    # 10.0.0.0/15 covers 10.0.0.0-10.1.255.255.
    assert first_free(nets("10.0.0.0/15")) == IPv4Network("10.2.0.0/24")


def test_10_0_x_is_never_chosen() -> None:
    # Lying below the pool, 10.0.x.0/24 is not offered even when everything
    # from 10.1.1.0 up is taken but 10.0.0.0/16 is free.
    with pytest.raises(BackendError):
        first_free(nets("10.1.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13",
                        "10.16.0.0/12", "10.32.0.0/11", "10.64.0.0/10", "10.128.0.0/9"))


def test_the_last_24_of_the_pool() -> None:
    used = nets("10.0.0.0/9", "10.128.0.0/10", "10.192.0.0/11", "10.224.0.0/12",
                "10.240.0.0/13", "10.248.0.0/14", "10.252.0.0/15", "10.254.0.0/16",
                "10.255.0.0/17", "10.255.128.0/18", "10.255.192.0/19", "10.255.224.0/20",
                "10.255.240.0/21", "10.255.248.0/22", "10.255.252.0/23", "10.255.254.0/24")
    assert first_free(used) == POOL_LAST


def test_exhausted_by_10_8() -> None:
    with pytest.raises(BackendError, match="No free /24"):
        first_free(nets("10.0.0.0/8"))


def test_exhausted_by_a_supernet() -> None:
    with pytest.raises(BackendError):
        first_free(nets("0.0.0.0/1"))


def test_exhausted_when_the_last_is_taken_after_the_rest() -> None:
    # Everything but the last /24 is taken, then the last too.
    below_last = nets("10.1.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13",
                      "10.16.0.0/12", "10.32.0.0/11", "10.64.0.0/10", "10.128.0.0/10",
                      "10.192.0.0/11", "10.224.0.0/12", "10.240.0.0/13", "10.248.0.0/14",
                      "10.252.0.0/15", "10.254.0.0/16", "10.255.0.0/17", "10.255.128.0/18",
                      "10.255.192.0/19", "10.255.224.0/20", "10.255.240.0/21",
                      "10.255.248.0/22", "10.255.252.0/23", "10.255.254.0/24")
    assert first_free(below_last) == POOL_LAST
    with pytest.raises(BackendError):
        first_free(below_last + nets("10.255.255.128/25"))


def test_a_network_just_past_the_pool_does_not_block_it() -> None:
    assert first_free(nets("11.0.0.0/24") + nets("10.0.0.0/9")) == IPv4Network("10.128.0.0/24")


def test_sixty_thousand_networks_in_use_give_the_next_free_one() -> None:
    used = [IPv4Network((0x0A000000 + (i << 8), 24)) for i in range(1, 60000)]
    assert first_free(used) == IPv4Network((0x0A000000 + (60000 << 8), 24))


# ------------------------------------------------------------------ the pool


def test_the_default_pool_offers_10_1_1_to_10_255_255() -> None:
    assert DEFAULT_POOL == IPv4Network("10.0.0.0/8")
    assert pool_bounds(DEFAULT_POOL) == (POOL_FIRST, POOL_LAST)


@pytest.mark.parametrize("pool, first, last", [
    ("10.200.0.0/16", "10.200.0.0/24", "10.200.255.0/24"),
    ("172.16.0.0/12", "172.16.0.0/24", "172.31.255.0/24"),
    ("192.168.77.0/24", "192.168.77.0/24", "192.168.77.0/24"),
    ("10.0.0.0/9", "10.0.0.0/24", "10.127.255.0/24"),
])
def test_any_other_pool_offers_all_its_24s(pool: str, first: str, last: str) -> None:
    assert pool_bounds(IPv4Network(pool)) == (IPv4Network(first), IPv4Network(last))


@pytest.mark.parametrize("pool, problem", [
    ("10.1.1.0/25", "smaller than a /24"),
    ("100.64.0.0/10", "not private address space"),
    ("192.0.2.0/24", "not private address space"),
    ("0.0.0.0/0", "not private address space"),
])
def test_pools_that_cannot_be(pool: str, problem: str) -> None:
    assert problem in pool_problem(IPv4Network(pool))
    with pytest.raises(BackendError, match=problem):
        first_free([], IPv4Network(pool))


def test_a_moved_pool() -> None:
    pool = IPv4Network("10.200.0.0/16")
    assert first_free([], pool) == IPv4Network("10.200.0.0/24")
    assert first_free(nets("10.200.0.0/24", "10.1.1.0/24"), pool) == IPv4Network("10.200.1.0/24")
    with pytest.raises(BackendError, match="pool 10.200.0.0 to 10.200.255.0"):
        first_free(nets("10.200.0.0/17", "10.200.128.0/17"), pool)


def test_a_pool_of_one_24() -> None:
    pool = IPv4Network("192.168.77.0/24")
    assert first_free(nets("192.168.76.0/24"), pool) == pool
    with pytest.raises(BackendError):
        first_free(nets("192.168.77.9/32"), pool)


# --------------------------------------------------------------- used networks


def route(text: str, **kwargs) -> Route:
    return Route(IPv4Network(text), **kwargs)


def allocated(*routes: Route, addresses: tuple[Address, ...] = (), reserved=()) -> IPv4Network:
    return allocate(addresses, routes, nets(*reserved))


def test_default_routes_block_nothing() -> None:
    assert allocated(route("0.0.0.0/0", gateways=("192.0.2.1",)),
                     route("0.0.0.0/0", table="100")) == POOL_FIRST


def test_the_def1_pair_blocks_nothing() -> None:
    def1 = (route("0.0.0.0/1", gateways=("10.8.0.1",), devices=("tun0",)),
            route("128.0.0.0/1", gateways=("10.8.0.1",), devices=("tun0",)))
    assert allocated(*def1) == POOL_FIRST
    assert allocated(*def1, route("0.0.0.0/0", gateways=("192.168.1.1",))) == POOL_FIRST
    # the VPN's own network still counts
    assert allocated(*def1, route("10.1.1.0/24", devices=("tun0",))) == IPv4Network("10.1.2.0/24")


def test_any_split_of_the_whole_space_blocks_nothing() -> None:
    quarters = [route(f"{q}.0.0.0/2", kind="unreachable", table="51820") for q in (0, 64, 128, 192)]
    assert allocated(*quarters) == POOL_FIRST


def test_a_wide_route_that_is_no_split_default_blocks_what_it_covers() -> None:
    with pytest.raises(BackendError, match=r"route 10.0.0.0/7 via 192.0.2.9 dev eth0"):
        allocated(route("10.0.0.0/7", gateways=("192.0.2.9",), devices=("eth0",)),
                  route("0.0.0.0/0", gateways=("192.0.2.1",)))
    with pytest.raises(BackendError, match=r"route 0.0.0.0/1 dev tun0"):
        allocated(route("0.0.0.0/1", devices=("tun0",)))


def test_the_halves_of_a_split_must_be_in_one_table() -> None:
    with pytest.raises(BackendError):
        allocated(route("0.0.0.0/1"), route("128.0.0.0/1", table="100"))


def test_a_routed_10_8_exhausts_the_pool_and_is_named() -> None:
    with pytest.raises(BackendError) as caught:
        allocated(route("10.0.0.0/8", gateways=("192.0.2.9",), devices=("eth0",)))
    message = str(caught.value)
    assert message.startswith("No free /24 is left in the subnet pool 10.1.1.0 to 10.255.255.0: "
                              "every one overlaps a network in use (route 10.0.0.0/8 via "
                              "192.0.2.9 dev eth0).")
    assert "`subnets:`" in message


def test_a_host_route_blocks_its_24() -> None:
    assert allocated(route("10.1.1.9/32", gateways=("192.0.2.9",))) == IPv4Network("10.1.2.0/24")


def test_a_blackhole_route_blocks_its_networks() -> None:
    assert allocated(route("10.1.1.0/24", kind="blackhole")) == IPv4Network("10.1.2.0/24")
    assert str(route("10.1.1.0/24", kind="blackhole")) == "route blackhole 10.1.1.0/24"


def test_routes_of_every_table_count() -> None:
    assert allocated(route("10.1.1.0/24", table="100", devices=("eth9",))) == IPv4Network(
        "10.1.2.0/24")


def test_addresses_and_their_peers() -> None:
    addresses = (Address("eth9", IPv4Interface("10.1.1.5/24")),
                 Address("tun0", IPv4Interface("10.9.0.1/32"), IPv4Interface("10.1.2.1/32")))
    assert allocated(addresses=addresses) == IPv4Network("10.1.3.0/24")


def test_reserved_networks_count() -> None:
    assert allocated(reserved=("10.1.1.0/24", "10.1.2.0/24")) == IPv4Network("10.1.3.0/24")


def test_the_exhaustion_names_the_users_of_the_pool_in_order() -> None:
    addresses = tuple(Address(f"eth{i}", IPv4Interface(f"10.{i}.0.1/8")) for i in (3, 1, 2))
    routes = (route("10.0.0.0/8", kind="blackhole"), route("192.168.0.0/16", devices=("lan",)))
    used = used_networks(addresses, routes, nets("10.1.1.0/24"))
    with pytest.raises(BackendError) as caught:
        first_free(used)
    message = str(caught.value)
    assert ("(address 10.1.0.1/8 on eth1; address 10.2.0.1/8 on eth2; address 10.3.0.1/8 "
            "on eth3; route blackhole 10.0.0.0/8; 10.1.1.0/24, which Locker's host state "
            "holds for another project's bridge)") in message
    assert "192.168" not in message


def test_the_exhaustion_names_a_few_and_counts_the_rest() -> None:
    used = [IPv4Network((0x0A000000 + (i << 16), 16)) for i in range(256)]
    with pytest.raises(BackendError, match=r"\(10.1.0.0/16; .*; 10.6.0.0/16; and 249 more\)"):
        first_free(used)


def test_route_phrases() -> None:
    assert str(route("0.0.0.0/0", gateways=("192.0.2.1",), devices=("eth0",))) == (
        "route default via 192.0.2.1 dev eth0")
    assert str(route("10.1.0.0/16", gateways=("10.0.0.1", "10.0.0.2"), devices=("a", "a"),
                     table="7")) == "route 10.1.0.0/16 via 10.0.0.1 via 10.0.0.2 dev a table 7"
    assert table_number(254) == "main" and table_number(255) == "local"
    assert table_number(100) == "100"


# ------------------------------------------------------------------ conflicts


BRIDGE_NET = IPv4Network("10.1.1.0/24")
OWN = (Address("locker_a", IPv4Interface("10.1.1.1/24")),)
OWN_ROUTES = (route("10.1.1.0/24", devices=("locker_a",)),
              route("10.1.1.1/32", kind="local", table="local", devices=("locker_a",)),
              route("10.1.1.255/32", kind="broadcast", table="local", devices=("locker_a",)))


def test_no_conflicts_for_a_bridge_alone() -> None:
    assert conflicts(BRIDGE_NET, "locker_a", OWN, OWN_ROUTES) == []


def test_conflicts_name_addresses_and_routes() -> None:
    addresses = OWN + (Address("eth9", IPv4Interface("10.1.0.5/16")),
                       Address("eth8", IPv4Interface("192.168.1.5/24")))
    routes = OWN_ROUTES + (
        route("10.1.1.128/25", gateways=("10.1.0.254",), devices=("eth9",)),
        route("10.1.1.0/24", kind="blackhole", table="100"),
        route("10.1.0.0/16", devices=("eth9",)),
        route("0.0.0.0/0", gateways=("10.1.0.254",)),
        route("0.0.0.0/1", devices=("tun0",)), route("128.0.0.0/1", devices=("tun0",)),
        route("10.1.2.0/24", devices=("eth9",)),
    )
    assert conflicts(BRIDGE_NET, "locker_a", addresses, routes) == [
        "address 10.1.0.5/16 on eth9",
        "route 10.1.1.128/25 via 10.1.0.254 dev eth9",
        "route blackhole 10.1.1.0/24 table 100",
        "route 10.1.0.0/16 dev eth9",
    ]


def test_a_wide_route_that_is_no_split_default_conflicts() -> None:
    assert conflicts(BRIDGE_NET, "locker_a", OWN, OWN_ROUTES + (route("0.0.0.0/1"),)) == [
        "route 0.0.0.0/1"]


def test_routes_the_kernel_made_for_an_address_are_left_to_the_address() -> None:
    kernel = (route("10.1.1.0/24", devices=("eth9",), protocol="kernel"),
              route("10.1.1.5/32", kind="local", table="local", devices=("eth9",),
                    protocol="kernel"))
    assert allocated(*kernel) == POOL_FIRST  # without the address, nothing
    addresses = (Address("eth9", IPv4Interface("10.1.1.5/24")),)
    assert [u.what for u in used_networks(addresses, kernel)] == ["address 10.1.1.5/24 on eth9"]
    assert conflicts(BRIDGE_NET, "locker_a", OWN + addresses, OWN_ROUTES + kernel) == [
        "address 10.1.1.5/24 on eth9"]


def test_a_local_route_someone_added_counts() -> None:
    # AnyIP: `ip route add local 10.1.1.0/24 dev lo` makes the range local
    assert allocated(route("10.1.1.0/24", kind="local", table="local",
                           devices=("lo",))) == IPv4Network("10.1.2.0/24")
