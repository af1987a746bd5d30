"""The host configuration file: where it is found, what it may hold, and its
problems reported with the file's name and line."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from locker import hostconfig
from locker.errors import ConfigError
from locker.hostconfig import load_host_config
from locker.project import HostConfig
from locker.subnets import DEFAULT_POOL


@pytest.fixture
def default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default path, moved away from the real /etc."""
    path = tmp_path / "etc" / "locker.yaml"
    monkeypatch.setattr(hostconfig, "DEFAULT_PATH", path)
    return path


def problems_of(path: Path, text: str) -> list[str]:
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_host_config({"LOCKER_CONFIG": str(path)})
    assert caught.value.exit_status == 2
    assert str(path) in str(caught.value)
    return [line.removeprefix(f"{path}:") for line in caught.value.problems]


def test_missing_default_file_is_empty(default_path: Path) -> None:
    assert load_host_config({}) == HostConfig()
    assert load_host_config({"LOCKER_CONFIG": ""}) == HostConfig()


def test_default_file_is_read(default_path: Path) -> None:
    default_path.parent.mkdir()
    default_path.write_text("firewall: iptables\n")
    assert load_host_config({}) == HostConfig(path=default_path, firewall="iptables")


def test_missing_file_named_by_environment_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"{path}: no such host configuration file") as caught:
        load_host_config({"LOCKER_CONFIG": str(path)})
    assert caught.value.exit_status == 2


def test_all_keys(tmp_path: Path) -> None:
    path = tmp_path / "host.yaml"
    path.write_text("# this host\nfirewall: nftables\nlink: ipr2\nlxcpath: /srv/lxc\n")
    assert load_host_config({"LOCKER_CONFIG": str(path)}) == HostConfig(
        path=path, firewall="nftables", link="ipr2", lxcpath="/srv/lxc")


def test_empty_file_and_empty_values(tmp_path: Path) -> None:
    path = tmp_path / "host.yaml"
    path.write_text("")
    assert load_host_config({"LOCKER_CONFIG": str(path)}) == HostConfig(path=path)
    path.write_text("firewall:\nlink: ~\n")
    assert load_host_config({"LOCKER_CONFIG": str(path)}) == HostConfig(path=path)


def test_every_problem_with_its_line(tmp_path: Path) -> None:
    found = problems_of(tmp_path / "host.yaml", (
        "firewal: nftables\n"
        "link: Net Link\n"
        "lxcpath: var/lib/lxc\n"
        "firewall: [nftables]\n"
        "link: netlink\n"
    ))
    assert found == [
        '1: firewal: unknown key; did you mean "firewall"?',
        '2: link: "Net Link": not a backend name (lower-case letters, digits, - and _); '
        "run `locker backends` to see the installed link backends",
        '3: lxcpath: "var/lib/lxc": not an absolute path; give the directory the '
        "containers live in, like /var/lib/lxc",
        "4: firewall: expected a single value, found a list",
        "5: link: key given twice (first at line 2); keep only one of them",
    ]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    [found] = problems_of(tmp_path / "host.yaml", "firewall: nftables\nlink: [netlink\n")
    assert found.startswith("3: YAML syntax error: ")


def test_not_a_mapping(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "host.yaml", "- nftables\n") == [
        "1: expected a mapping of keys to values, found a list"]


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"Cannot read {tmp_path}"):
        load_host_config({"LOCKER_CONFIG": str(tmp_path)})


def test_the_subnet_pool(tmp_path: Path) -> None:
    path = tmp_path / "host.yaml"
    path.write_text("subnets: 10.200.0.0/16\n")
    config = load_host_config({"LOCKER_CONFIG": str(path)})
    assert config == HostConfig(path=path, subnets=IPv4Network("10.200.0.0/16"))
    assert config.pool == IPv4Network("10.200.0.0/16")
    path.write_text("subnets: '192.168.77.0/24'\n")
    assert load_host_config({"LOCKER_CONFIG": str(path)}).pool == IPv4Network("192.168.77.0/24")


def test_without_a_pool_the_default_one() -> None:
    assert HostConfig().pool == DEFAULT_POOL == IPv4Network("10.0.0.0/8")


def test_bad_pools_with_their_lines(tmp_path: Path) -> None:
    found = []
    for value in ("10.200.0.0", "10.200.0.1/16", "10.1.1.0/25", "100.64.0.0/10", "ten",
                  "[10.200.0.0/16]"):
        found += problems_of(tmp_path / "host.yaml", f"firewall: nftables\nsubnets: {value}\n")
    assert found == [
        '2: subnets: "10.200.0.0": no prefix length; give the pool as ADDRESS/PREFIX, '
        "like 10.200.0.0/16",
        '2: subnets: "10.200.0.1/16": has host bits set; did you mean 10.200.0.0/16?',
        '2: subnets: "10.1.1.0/25": smaller than a /24; give a /24 or a wider network, '
        "like 10.200.0.0/16",
        '2: subnets: "100.64.0.0/10": not private address space; give a network inside '
        "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
        '2: subnets: "ten": not an IPv4 network; give the pool to take project subnets '
        "from as ADDRESS/PREFIX, like 10.200.0.0/16",
        "2: subnets: expected a single value, found a list",
    ]


def test_backend_settings_are_kept_with_their_place(tmp_path: Path) -> None:
    path = tmp_path / "locker.yaml"
    path.write_text("firewall: iptables\nbackends:\n  iptables:\n    lock_timeout: 30\n")
    host = load_host_config({"LOCKER_CONFIG": str(path)})
    setting = host.backends["iptables"]["lock_timeout"]
    assert (setting.value, setting.where) == ("30", f"{path}:4: backends.iptables.lock_timeout")


def test_backend_settings_must_be_a_mapping_per_backend(tmp_path: Path) -> None:
    path = tmp_path / "locker.yaml"
    path.write_text("backends:\n  Bad Name: {x: 1}\n  iptables: [1, 2]\n")
    with pytest.raises(ConfigError) as caught:
        load_host_config({"LOCKER_CONFIG": str(path)})
    assert any(':2: backends."Bad Name"' in p and "not a backend name" in p
               for p in caught.value.problems)
    assert any(":3: backends.iptables" in p and "expected a mapping" in p
               for p in caught.value.problems)


def test_the_dns_forwarder_can_be_turned_off(tmp_path: Path) -> None:
    path = tmp_path / "locker.yaml"
    path.write_text("dns_forwarder: false\n")
    assert load_host_config({"LOCKER_CONFIG": str(path)}).dns_forwarder is False
    path.write_text("dns_forwarder: maybe\n")
    with pytest.raises(ConfigError) as caught:
        load_host_config({"LOCKER_CONFIG": str(path)})
    assert "not true or false" in caught.value.problems[0]


def test_isolated_default(tmp_path: Path) -> None:
    path = tmp_path / "host.yaml"
    assert HostConfig().isolated is False
    path.write_text("isolated: true\n")
    assert load_host_config({"LOCKER_CONFIG": str(path)}) == HostConfig(path=path, isolated=True)
    path.write_text("isolated: False\n")
    assert load_host_config({"LOCKER_CONFIG": str(path)}) == HostConfig(path=path)


def test_isolated_must_be_true_or_false(tmp_path: Path) -> None:
    found = problems_of(tmp_path / "host.yaml", "dns_forwarder: true\nisolated: yes please\n")
    assert len(found) == 1
    assert found[0].startswith("2: isolated: ") and "not true or false" in found[0], found
