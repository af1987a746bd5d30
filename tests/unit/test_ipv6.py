"""IPv6 (issue 11 item 3): the host prefix and the project /64s derived
from it, the keys that turn it on, and the values the planner builds."""

from __future__ import annotations

import os
import stat
import textwrap
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, \
    IPv6Network
from pathlib import Path

import pytest

from locker import diff, ipv6, planner
from locker.errors import ConfigError, Invalid, LockerError
from locker.hostconfig import load_host_config
from locker.model import Bridge, Forward, Link
from locker.pieces import nat_bridges, nat_doomed, nat_keys
from locker.project import ContainerSpec, LinkSpec, PortSpec, Project
from locker.projectfile import load_project
from locker.runtime import lxcconfig
from locker.state import HOST_ID, HostState

PREFIX = IPv6Network("fd00:1234:5678::/48")
NET4 = IPv4Network("10.1.2.0/24")
NET6 = IPv6Network("fd00:1234:5678:102::/64")


# ------------------------------------------------------------ the prefix

def test_a_projects_64_takes_its_subnet_id_from_the_ipv4_subnet() -> None:
    assert ipv6.subnet_id(NET4) == 1 * 256 + 2
    assert ipv6.project_network(PREFIX, NET4) == NET6
    assert ipv6.project_network(PREFIX, IPv4Network("10.200.255.0/24")) == \
        IPv6Network("fd00:1234:5678:c8ff::/64")
    # distinct /24s of a pool give distinct /64s
    subnets = {ipv6.project_network(PREFIX, IPv4Network(f"10.{a}.{b}.0/24"))
               for a in (0, 1, 255) for b in (0, 7, 255)}
    assert len(subnets) == 9


def test_bridge_and_container_addresses_follow_the_ipv4_ones() -> None:
    assert ipv6.gateway(NET6) == IPv6Address("fd00:1234:5678:102::1")
    assert ipv6.container_address(NET6, IPv4Address("10.1.2.7")) == \
        IPv6Address("fd00:1234:5678:102::7")


def test_random_prefixes_are_rfc4193() -> None:
    seen = {ipv6.random_prefix() for _ in range(20)}
    assert len(seen) > 1
    for prefix in seen:
        assert prefix.prefixlen == 48 and prefix.subnet_of(IPv6Network("fd00::/8"))
    assert ipv6.prefix_from_global_id(0x1234567890) == IPv6Network("fd12:3456:7890::/48")
    with pytest.raises(Invalid):
        ipv6.prefix_from_global_id(1 << 40)


@pytest.mark.parametrize(("text", "message"), [
    ("fd00:1234:5678::1/48", "has host bits set; did you mean fd00:1234:5678::/48?"),
    ("2001:db8::/48", "is not a unique local prefix"),
    ("fd00:1234:5678::/64", "is not a /48"),
    ("fd00:1234:5678::", "is not a /48"),
    ("10.0.0.0/8", "not an IPv6 prefix"),
])
def test_bad_prefixes_are_refused(text: str, message: str) -> None:
    with pytest.raises(Invalid, match=message.replace("?", r"\?")):
        ipv6.parse_prefix(text)


def test_the_host_id_is_made_once_and_kept(tmp_path: Path) -> None:
    state = HostState(tmp_path / "state", print)
    first = state.host_prefix()
    path = tmp_path / "state" / HOST_ID
    assert path.read_text() == f"{first}\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert first.subnet_of(IPv6Network("fd00::/8")) and first.prefixlen == 48
    assert HostState(tmp_path / "state", print).host_prefix() == first
    assert [p.name for p in (tmp_path / "state").iterdir()] == [HOST_ID]  # no temporary left


def test_a_corrupt_host_id_is_an_error_not_replaced(tmp_path: Path) -> None:
    (tmp_path / HOST_ID).write_text("2001:db8::/48\n")
    with pytest.raises(LockerError, match="not a unique local prefix"):
        HostState(tmp_path, print).host_prefix()
    assert (tmp_path / HOST_ID).read_text() == "2001:db8::/48\n"


# -------------------------------------------------------------- the keys

def test_host_file_keys(tmp_path: Path) -> None:
    path = tmp_path / "locker.yaml"
    path.write_text("ipv6: true\nipv6_prefix: fd00:1234:5678::/48\nipv6_nat: false\n")
    host = load_host_config({"LOCKER_CONFIG": str(path)})
    assert (host.ipv6, host.ipv6_prefix, host.ipv6_nat) == (True, PREFIX, False)
    path.write_text("{}\n")
    host = load_host_config({"LOCKER_CONFIG": str(path)})
    assert (host.ipv6, host.ipv6_prefix, host.ipv6_nat) == (False, None, True)


@pytest.mark.parametrize(("line", "message"), [
    ("ipv6_prefix: 2001:db8::/48", "1: ipv6_prefix: \"2001:db8::/48\": is not a unique local"),
    ("ipv6: maybe", '1: ipv6: "maybe": not true or false'),
    ("ipv6_nat: 1", '1: ipv6_nat: "1": not true or false; false routes'),
])
def test_bad_host_file_keys(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "locker.yaml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_host_config({"LOCKER_CONFIG": str(path)})
    assert caught.value.exit_status == 2
    assert [p.removeprefix(f"{path}:") for p in caught.value.problems][0].startswith(message)


def _project(tmp_path: Path, text: str, ipv6_default: bool = False) -> Project:
    folder = tmp_path / "proj"
    folder.mkdir(exist_ok=True)
    (folder / "locker.yaml").write_text(textwrap.dedent(text))
    return load_project(folder / "locker.yaml", ipv6_default=ipv6_default)


V6_FORWARD = ('{ipv6}containers:\n  web:\n    ports:\n      - "8080:80"\n'
              '      - "[2001:db8::1]:8443:443/TCP"\n')


def test_the_project_key_and_an_ipv6_host_ip(tmp_path: Path) -> None:
    project = _project(tmp_path, V6_FORWARD.format(ipv6="ipv6: true\n"))
    assert project.ipv6 is True
    assert project.container("web").ports[1] == PortSpec(8443, 443, "tcp",
                                                         IPv6Address("2001:db8::1"))
    # the host file's default applies when the file says nothing
    assert _project(tmp_path, V6_FORWARD.format(ipv6=""), ipv6_default=True).ipv6 is None


@pytest.mark.parametrize(("top", "default", "line"), [
    ("", False, 5), ("ipv6: false\n", True, 6), ("ipv6: False\n", False, 6)])
def test_an_ipv6_host_ip_without_ipv6_names_its_line(tmp_path: Path, top: str, default: bool,
                                                     line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        _project(tmp_path, V6_FORWARD.format(ipv6=top), ipv6_default=default)
    assert caught.value.exit_status == 2
    (problem,) = caught.value.problems
    assert problem.endswith(f'locker.yaml:{line}: containers.web.ports[1]: '
                            '"[2001:db8::1]:8443:443/TCP": an IPv6 HOST_IP, but the project '
                            'has no IPv6; set ipv6: true at the top of the file (or ipv6: true '
                            'in the host file), or give an IPv4 HOST_IP')


def test_a_bad_ipv6_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _project(tmp_path, "ipv6: yes please\ncontainers: {web: {}}\n")
    assert caught.value.problems[0].endswith('locker.yaml:1: ipv6: "yes please": not true '
                                             "or false; true gives the project an IPv6 /64 "
                                             "besides its IPv4 /24, false (or leaving it out, "
                                             "unless the host file says ipv6: true) keeps it "
                                             "IPv4 only")


# ------------------------------------------------------------- the values

BRIDGE6 = Bridge("shop", "locker_shop", NET4, network6=NET6)
V4 = {"web": IPv4Address("10.1.2.2"), "db": IPv4Address("10.1.2.3")}
W6, D6 = IPv6Address("fd00:1234:5678:102::2"), IPv6Address("fd00:1234:5678:102::3")


def test_values_check_their_families() -> None:
    with pytest.raises(Invalid, match="not of the same family"):
        Forward("shop", "web", 80, W6, 80, host_ip=IPv4Address("192.0.2.1"))
    with pytest.raises(Invalid, match="not of the same family"):
        Link("shop", "web", V4["web"], "db", D6)
    with pytest.raises(Invalid, match="network6"):
        Bridge("shop", "locker_shop", NET4, network6=IPv6Network("fd00::/48"))
    with pytest.raises(Invalid, match="network6"):
        Bridge("shop", "locker_shop", NET4, network6="fd00::/64")  # type: ignore[arg-type]
    forward = Forward("shop", "web", 8080, W6, 80, host_ip=IPv6Address("2001:db8::1"))
    assert str(forward) == "[2001:db8::1]:8080/tcp -> [fd00:1234:5678:102::2]:80"
    assert forward.family == 6
    assert BRIDGE6.gateway6 == IPv6Address("fd00:1234:5678:102::1")
    assert BRIDGE6.interface6 == IPv6Interface("fd00:1234:5678:102::1/64")
    assert Bridge("shop", "locker_shop", NET4).interface6 is None


def _shop() -> Project:
    return Project("shop", Path("/p/locker.yaml"), (
        ContainerSpec("web", ports=(PortSpec(8080, 80), PortSpec(443, 443, "tcp",
                                                                 IPv6Address("2001:db8::1")),
                                    PortSpec(53, 53, "udp", IPv4Address("192.0.2.10"))),
                      links=(LinkSpec("db"),)),
        ContainerSpec("db")), ipv6=True)


def test_the_planner_builds_a_value_per_family() -> None:
    want = diff.wanted(_shop(), BRIDGE6, V4, {"web", "db"})
    assert want.forwards == {
        Forward("shop", "web", 8080, V4["web"], 80),
        Forward("shop", "web", 8080, W6, 80),
        Forward("shop", "web", 443, W6, 443, host_ip=IPv6Address("2001:db8::1")),
        Forward("shop", "web", 53, V4["web"], 53, "udp", IPv4Address("192.0.2.10")),
    }
    assert want.links == {Link("shop", "web", V4["web"], "db", V4["db"]),
                          Link("shop", "web", W6, "db", D6)}


def test_without_ipv6_the_planner_builds_ipv4_values_only() -> None:
    want = diff.wanted(_shop(), Bridge("shop", "locker_shop", NET4), V4, {"web", "db"})
    assert {f.family for f in want.forwards} == {4} and len(want.forwards) == 2
    assert {k.family for k in want.links} == {4}


@pytest.mark.parametrize("bridge", [
    BRIDGE6, Bridge("shop", "locker_shop", NET4, True, NET6),
    Bridge("shop", "locker_shop", NET4, True, NET6, nat6=False)])
def test_network_rule_keys_read_back_into_the_bridge(bridge: Bridge) -> None:
    keys = nat_keys(bridge)
    assert ("hairpin6", "shop", NET6) in keys
    assert (("masquerade6", "shop", NET6) in keys) is bridge.nat6
    assert nat_bridges(keys) == ({bridge}, set())
    assert nat_doomed([bridge], keys) >= keys
    # one IPv6 rule missing: partial, not complete
    assert nat_bridges(keys - {("deny6", "shop", "locker_shop")}) == (set(), {bridge})
    # the IPv4 rules alone are another (IPv4-only) value
    ipv4_only = {k for k in keys if not k[0].endswith("6")}
    plain = Bridge("shop", "locker_shop", NET4, bridge.isolated)
    assert nat_bridges(ipv4_only) == ({plain}, set())


def test_hosts_entries_for_both_families() -> None:
    entries = planner.hosts_entries(_shop(), "web", V4, network6=NET6)
    assert [e.line() for e in entries] == ["10.1.2.3\tdb\t# locker",
                                           "fd00:1234:5678:102::3\tdb\t# locker"]
    text = planner.hosts_file(None, entries)
    assert planner.parse_hosts_entries(text) == entries


def test_the_lxc_config_gets_the_ipv6_lines() -> None:
    block = lxcconfig.render_block("locker_shop", IPv4Interface("10.1.2.2/24"),
                                   IPv4Address("10.1.2.1"),
                                   address6=IPv6Interface("fd00:1234:5678:102::2/64"),
                                   gateway6=IPv6Address("fd00:1234:5678:102::1"))
    assert "lxc.net.0.ipv6.address = fd00:1234:5678:102::2/64" in block
    assert "lxc.net.0.ipv6.gateway = fd00:1234:5678:102::1" in block
    assert not any("ipv6" in line for line in lxcconfig.render_block(
        "locker_shop", IPv4Interface("10.1.2.2/24"), IPv4Address("10.1.2.1")))


def test_a_bridge_without_its_ipv6_address_is_partial() -> None:
    from locker.model import BridgeState, Ruleset

    state = BridgeState("locker_shop", (IPv4Interface("10.1.2.1/24"),), True)
    found = diff.Found(state, Ruleset())
    (item,) = diff.diff(_shop(), diff.Wanted(BRIDGE6, frozenset(), frozenset()), found).of(
        diff.BRIDGE)
    assert (item.status, item.reason, item.fix) == (
        diff.PARTIAL, "the bridge lacks its IPv6 address fd00:1234:5678:102::1/64",
        "locker start")
    with_six = BridgeState("locker_shop", (IPv4Interface("10.1.2.1/24"),), True,
                           addresses6=(BRIDGE6.interface6,))
    (item,) = diff.diff(_shop(), diff.Wanted(BRIDGE6, frozenset(), frozenset()),
                        diff.Found(with_six, Ruleset())).of(diff.BRIDGE)
    assert item.status == diff.IN_PLACE
