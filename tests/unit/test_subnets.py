"""The subnet allocator: the first /24 of 10.1.1.0-10.255.255.0 that overlaps
none of the networks in use."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from locker.errors import BackendError
from locker.subnets import POOL_FIRST, POOL_LAST, first_free


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


def test_many_networks_are_fast_enough() -> None:
    used = [IPv4Network((0x0A000000 + (i << 8), 24)) for i in range(1, 60000)]
    assert first_free(used) == IPv4Network((0x0A000000 + (60000 << 8), 24))
