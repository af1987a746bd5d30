"""The DNS forwarder's files and names (the process itself is tested end to
end, tests/e2e/test_e2e_dns.py)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from locker.ops import network
from locker.ops.network import Facts
from locker.services.dns import DnsForwarder
from test_ops import make_env

IP = IPv4Address


def test_it_answers_running_containers_by_name_project_name_and_fqdn(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    facts = Facts({"web": "RUNNING", "db": "FROZEN", "cache": "STOPPED"},
                  {"web": IPv4Interface("10.1.1.2/24"), "db": IPv4Interface("10.1.1.3/24"),
                   "cache": IPv4Interface("10.1.1.4/24")})
    assert network.dns_names(env.ctx, facts) == {
        IP("10.1.1.2"): ("web.example.net", "web.shop", "web"),
        IP("10.1.1.3"): ("db.example.net", "db.shop", "db"),
    }


def test_its_configuration_binds_to_the_bridge_only(tmp_path: Path) -> None:
    forwarder = DnsForwarder("shop", tmp_path)
    config = forwarder.config(IP("10.1.1.1")).splitlines()
    assert "listen-address=10.1.1.1" in config and "bind-interfaces" in config
    assert "no-hosts" in config and f"addn-hosts={tmp_path}/shop/hosts" in config
    assert not any(line.startswith("dhcp-range") for line in config)


def test_its_hosts_file_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    forwarder = DnsForwarder("shop", tmp_path)
    names = {IP("10.1.1.2"): ("web.shop", "web")}
    assert forwarder.write_hosts(names) is True
    assert forwarder.write_hosts(names) is False
    assert (tmp_path / "shop" / "hosts").read_text() == "10.1.1.2\tweb.shop web\n"
    assert forwarder.pid() is None  # nothing runs
