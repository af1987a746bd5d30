"""The planner: pure functions from the project and live facts to the
network the project must have."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from locker import planner
from locker.errors import ConfigError
from locker.model import Forward
from locker.planner import HostsEntry
from locker.project import ContainerSpec, LinkSpec, PortSpec, Project

NET = IPv4Network("10.1.1.0/24")
IP = IPv4Address


def iface(text: str) -> IPv4Interface:
    return IPv4Interface(text)


def project(*containers: ContainerSpec) -> Project:
    return Project("shop", Path("/srv/shop/locker.yaml"), containers)


SHOP = project(
    ContainerSpec("web", ports=(PortSpec(8080, 80), PortSpec(5353, 53, "udp", IP("192.0.2.10"))),
                  links=(LinkSpec("db", "database"),), fqdn="web.example.net"),
    ContainerSpec("db", fqdn="db.example.net", ports=(PortSpec(5432, 5432),)),
    ContainerSpec("cache", links=(LinkSpec("db"),)),
)
ADDRS = {"web": IP("10.1.1.2"), "db": IP("10.1.1.3"), "cache": IP("10.1.1.4")}


# ------------------------------------------------------------- addresses

def test_fresh_containers_get_the_lowest_addresses_in_order() -> None:
    got = planner.assign_addresses(["a", "b", "c"], {}, NET)
    assert got == {"a": iface("10.1.1.2/24"), "b": iface("10.1.1.3/24"), "c": iface("10.1.1.4/24")}


def test_assignment_is_stable_across_calls() -> None:
    first = planner.assign_addresses(["a", "b", "c"], {"b": iface("10.1.1.7/24")}, NET)
    again = planner.assign_addresses(["a", "b", "c"], first, NET)
    assert again == first
    assert first["b"] == iface("10.1.1.7/24")


def test_configured_containers_keep_theirs_and_others_take_the_lowest_free() -> None:
    got = planner.assign_addresses(["a", "b", "c"], {"b": iface("10.1.1.2/24"), "c": None}, NET)
    assert got == {"a": iface("10.1.1.3/24"), "b": iface("10.1.1.2/24"), "c": iface("10.1.1.4/24")}


def test_the_host_part_survives_a_move_to_another_network() -> None:
    got = planner.assign_addresses(["a", "b"], {"a": iface("10.1.1.9/24")},
                                   IPv4Network("10.1.5.0/24"))
    assert got == {"a": iface("10.1.5.9/24"), "b": iface("10.1.5.2/24")}


def test_a_duplicate_or_unusable_host_part_is_replaced() -> None:
    got = planner.assign_addresses(
        ["a", "b", "c"],
        {"a": iface("10.1.1.5/24"), "b": iface("10.1.1.5/24"), "c": iface("10.1.1.255/24")}, NET)
    assert got == {"a": iface("10.1.1.5/24"), "b": iface("10.1.1.2/24"), "c": iface("10.1.1.3/24")}


def test_253_containers_fit() -> None:
    names = [f"c{i}" for i in range(253)]
    got = planner.assign_addresses(names, {}, NET)
    assert got["c0"] == iface("10.1.1.2/24")
    assert got["c252"] == iface("10.1.1.254/24")
    assert len(set(got.values())) == 253


def test_the_254th_container_is_a_config_error_naming_it() -> None:
    names = [f"c{i}" for i in range(254)]
    with pytest.raises(ConfigError, match="'c253'") as caught:
        planner.assign_addresses(names, {}, NET)
    assert "253" in str(caught.value)


# ------------------------------------------------------- forwards, links

def fwd(container: str, host_port: int, ip: str, port: int, proto: str = "tcp",
        host_ip: str | None = None) -> Forward:
    return Forward("shop", container, host_port, IP(ip), port, proto,
                   IP(host_ip) if host_ip else None)


# ------------------------------------------------------------- hosts files

def test_hosts_entries_hold_own_fqdn_and_linked_peers() -> None:
    assert planner.hosts_entries(SHOP, "web", ADDRS) == [
        HostsEntry(IP("10.1.1.2"), ("web.example.net", "web")),
        HostsEntry(IP("10.1.1.3"), ("db.example.net", "db", "database")),
    ]
    assert planner.hosts_entries(SHOP, "web", ADDRS, unlinked=["web"]) == [
        HostsEntry(IP("10.1.1.2"), ("web.example.net", "web"))]
    assert planner.hosts_entries(SHOP, "web", ADDRS, unlinked=["db"]) == [
        HostsEntry(IP("10.1.1.2"), ("web.example.net", "web"))]
    assert planner.hosts_entries(SHOP, "cache", ADDRS) == [
        HostsEntry(IP("10.1.1.3"), ("db.example.net", "db"))]


def test_hosts_entries_skip_peers_without_an_address() -> None:
    assert planner.hosts_entries(SHOP, "cache", {"cache": IP("10.1.1.4")}) == []


def test_hosts_file_keeps_foreign_lines_in_order_and_replaces_lockers() -> None:
    current = ("127.0.0.1\tlocalhost\n"
               "10.1.1.3\told.example.net old\t# locker\n"
               "::1 ip6-localhost\n"
               "# a comment\n"
               "192.0.2.1 gateway\n")
    entries = [HostsEntry(IP("10.1.1.3"), ("db.example.net", "db", "database"))]
    assert planner.hosts_file(current, entries) == (
        "127.0.0.1\tlocalhost\n"
        "::1 ip6-localhost\n"
        "# a comment\n"
        "192.0.2.1 gateway\n"
        "10.1.1.3\tdb.example.net db database\t# locker\n")


def test_hosts_file_is_stable() -> None:
    entries = [HostsEntry(IP("10.1.1.3"), ("db",))]
    once = planner.hosts_file("127.0.0.1 localhost\n", entries)
    assert planner.hosts_file(once, entries) == once


def test_hosts_file_adds_localhost_when_missing() -> None:
    assert planner.hosts_file(None, []) == "127.0.0.1\tlocalhost\n"
    assert planner.hosts_file("192.0.2.1 gw\n", [HostsEntry(IP("10.1.1.2"), ("a",))]) == (
        "127.0.0.1\tlocalhost\n192.0.2.1 gw\n10.1.1.2\ta\t# locker\n")


def test_hosts_file_with_no_entries_removes_lockers_lines() -> None:
    current = "127.0.0.1 localhost\n10.1.1.3\tdb\t# locker\n"
    assert planner.hosts_file(current, []) == "127.0.0.1 localhost\n"


def test_the_hosts_own_file_gets_name_dot_project_and_fqdn_under_the_projects_mark() -> None:
    entries = planner.host_entries(SHOP, {"web": IP("10.1.1.2"), "cache": IP("10.1.1.4")})
    assert entries == [HostsEntry(IP("10.1.1.2"), ("web.example.net", "web.shop")),
                       HostsEntry(IP("10.1.1.4"), ("cache.shop",))]
    mark = planner.host_hosts_mark("shop")
    current = ("127.0.1.1 me\n"
               "10.1.1.9\told.shop\t# locker:shop\n"
               "10.2.2.2\tweb.other\t# locker:other\n"
               "10.1.1.3\tdb\t# locker\n")
    assert planner.hosts_file(current, entries, mark, localhost=False) == (
        "127.0.1.1 me\n"
        "10.2.2.2\tweb.other\t# locker:other\n"
        "10.1.1.3\tdb\t# locker\n"
        "10.1.1.2\tweb.example.net web.shop\t# locker:shop\n"
        "10.1.1.4\tcache.shop\t# locker:shop\n")


def test_parse_hosts_entries_round_trip() -> None:
    entries = planner.hosts_entries(SHOP, "web", ADDRS)
    text = planner.hosts_file("127.0.0.1 localhost\n10.9.9.9 foreign\n", entries)
    assert planner.parse_hosts_entries(text) == entries


def test_parse_hosts_entries_ignores_foreign_and_broken_lines() -> None:
    text = ("10.9.9.9 foreign\n"
            "not-an-address db\t# locker\n"
            "\t# locker\n"
            "10.1.1.3 db\t# locker\n")
    assert planner.parse_hosts_entries(text) == [HostsEntry(IP("10.1.1.3"), ("db",))]
    assert planner.parse_hosts_entries(None) == []


# ------------------------------------------------------------ nameservers

RESOLV = """# generated
nameserver 127.0.0.53
nameserver 192.0.2.53
nameserver ::1
nameserver 198.51.100.1
options edns0
nameserver bogus
"""


def test_copy_takes_the_hosts_non_loopback_servers_in_order() -> None:
    assert planner.nameservers(["$copy"], IP("10.1.1.1"), RESOLV) == [
        "192.0.2.53", "198.51.100.1"]


def test_bridge_copy_and_literal_keep_order_and_drop_duplicates() -> None:
    got = planner.nameservers(["192.0.2.53", "$bridge", "$copy", "$bridge"],
                              IP("10.1.1.1"), RESOLV)
    assert got == ["192.0.2.53", "10.1.1.1", "198.51.100.1"]


def test_copy_of_an_empty_resolv_conf_adds_nothing() -> None:
    assert planner.nameservers(["$copy", "$bridge"], IP("10.1.1.1"), "") == ["10.1.1.1"]


def test_resolv_conf() -> None:
    assert planner.resolv_conf(["10.1.1.1", "192.0.2.53"]) == (
        "nameserver 10.1.1.1\nnameserver 192.0.2.53\n")
