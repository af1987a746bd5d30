"""What is particular to the ipr2 backend: reading ``ip -j`` output, how a
failing command is reported, the availability check, and undoing a bridge
whose setup failed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from locker.errors import BackendError
from locker.plugins import new_manager
from locker.subnets import Address, Route
from locker.testing.link_suite import BRIDGE, NAME, link_of
from locker.testing.netns import NetNS
from locker_ipr2 import Ipr2Backend
from locker_ipr2.command import CommandError, Ip
from locker_ipr2.kernel import Kernel, parse_addresses, parse_link, parse_routes

# ------------------------------------------------------------------ parsing


def test_routes_as_ip_prints_them() -> None:
    entries = [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0", "flags": []},
        {"dst": "0.0.0.0/1", "gateway": "10.8.0.1", "dev": "tun0", "flags": []},
        {"dst": "10.1.8.9", "gateway": "10.1.1.250", "dev": "eth9", "flags": []},
        {"type": "blackhole", "dst": "10.1.7.0/24", "flags": []},
        {"type": "unreachable", "dst": "10.1.9.0/24", "table": "100", "flags": []},
        {"dst": "10.1.10.0/24", "flags": [], "nexthops": [
            {"gateway": "10.1.1.251", "dev": "eth9", "weight": 1, "flags": []},
            {"gateway": "10.1.1.252", "dev": "eth8", "weight": 1, "flags": []}]},
        {"dst": "10.2.0.0/16", "via": {"family": "inet6", "host": "fe80::1"}, "dev": "eth0"},
        {"type": "local", "dst": "10.1.1.5", "dev": "eth9", "table": "local",
         "protocol": "kernel"},
        {"type": "multicast", "flags": []},  # no destination: skipped
    ]
    assert parse_routes(entries) == [
        Route(IPv4Network("0.0.0.0/0"), gateways=("192.0.2.1",), devices=("eth0",)),
        Route(IPv4Network("0.0.0.0/1"), gateways=("10.8.0.1",), devices=("tun0",)),
        Route(IPv4Network("10.1.8.9/32"), gateways=("10.1.1.250",), devices=("eth9",)),
        Route(IPv4Network("10.1.7.0/24"), kind="blackhole"),
        Route(IPv4Network("10.1.9.0/24"), table="100", kind="unreachable"),
        Route(IPv4Network("10.1.10.0/24"), gateways=("10.1.1.251", "10.1.1.252"),
              devices=("eth9", "eth8")),
        Route(IPv4Network("10.2.0.0/16"), gateways=("fe80::1",), devices=("eth0",)),
        Route(IPv4Network("10.1.1.5/32"), table="local", kind="local", devices=("eth9",),
              protocol="kernel"),
    ]


def test_addresses_with_peers() -> None:
    entries = [{"ifname": "eth9", "addr_info": [
        {"family": "inet", "local": "10.1.1.5", "prefixlen": 24},
        {"family": "inet", "local": "10.9.0.1", "address": "10.9.0.2", "prefixlen": 32},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
        {"ifname": "lo", "addr_info": []}]
    assert parse_addresses(entries) == [
        Address("eth9", IPv4Interface("10.1.1.5/24")),
        Address("eth9", IPv4Interface("10.9.0.1/32"), IPv4Interface("10.9.0.2/32")),
    ]


def test_links() -> None:
    bridge = {"ifname": "br0", "flags": ["BROADCAST", "UP"], "ifalias": "locker:x",
              "linkinfo": {"info_kind": "bridge"}}
    plain = {"ifname": "eth0", "flags": ["BROADCAST"]}
    assert parse_link(bridge).kind == "bridge" and parse_link(bridge).up
    assert parse_link(bridge).alias == "locker:x"
    assert (parse_link(plain).kind, parse_link(plain).up, parse_link(plain).alias) == (
        None, False, None)


# ------------------------------------------------------- commands and errors


def fake_ip(tmp_path: Path, script: str) -> str:
    path = tmp_path / "ip"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_a_failing_command_quotes_itself_and_its_stderr(tmp_path: Path) -> None:
    ip = Ip(fake_ip(tmp_path, 'echo "RTNETLINK answers: Invalid argument" >&2\nexit 2\n'))
    with pytest.raises(CommandError) as caught:
        ip.run("link", "set", "dev", "my br", "up")
    assert str(caught.value) == ("`ip link set dev 'my br' up` failed: "
                                 "RTNETLINK answers: Invalid argument")
    assert caught.value.returncode == 2


def test_output_that_is_not_json(tmp_path: Path) -> None:
    ip = Ip(fake_ip(tmp_path, "echo 'not json'\n"))
    with pytest.raises(CommandError, match=r"`ip -j link show` failed: printed no valid JSON"):
        ip.json("link", "show")


def test_availability_without_ip() -> None:
    backend = Ipr2Backend()
    backend._path = None
    answer = backend.link_availability()
    assert not answer.usable
    assert "the ip command is not installed: install iproute2 4.18 or newer" in answer.reason
    with pytest.raises(BackendError, match="the ip command is not installed"):
        backend.find_bridge(name=NAME)


def test_availability_with_an_ip_without_json(tmp_path: Path) -> None:
    backend = Ipr2Backend()
    backend._path = fake_ip(tmp_path, (
        'if [ "$1" = -V ]; then echo "ip utility, iproute2-ss170905"; exit 0; fi\n'
        'echo \'Option "-j" is unknown, try "ip -help".\' >&2; exit 255\n'))
    answer = backend.link_availability()
    assert not answer.usable
    assert answer.reason.startswith(f"{backend._path} (iproute2 170905) has no usable JSON output")
    assert answer.reason.endswith("install iproute2 4.18 or newer.")
    assert 'Option "-j" is unknown' in answer.reason


def test_availability_names_the_version() -> None:
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command")
    answer = Ipr2Backend().link_availability()
    assert answer.usable, answer.reason
    assert answer.details["iproute2"][0].isdigit()


def test_locker_help_does_not_import_the_backend() -> None:
    code = ("import sys, runpy; sys.argv = ['locker', '--help']\n"
            "try:\n    runpy.run_module('locker.cli.main', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "sys.exit('locker_ipr2' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------- on the kernel


@pytest.fixture
def hook(netns: NetNS):
    return new_manager(Ipr2Backend()).hook


@pytest.mark.privileged
def test_a_bridge_created_by_a_failed_call_is_removed(hook, netns: NetNS, monkeypatch) -> None:
    def refuse(self, name, interface):
        raise CommandError(["ip", "addr", "add", str(interface), "dev", name],
                           "RTNETLINK answers: Invalid argument", 2)

    monkeypatch.setattr(Kernel, "add_address", refuse)
    with pytest.raises(BackendError) as caught:
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
    assert str(caught.value) == (f"Cannot set up bridge '{NAME}': `ip addr add 10.1.1.1/24 dev "
                                 f"{NAME}` failed: RTNETLINK answers: Invalid argument.")
    assert link_of(netns, NAME) is None


@pytest.mark.privileged
def test_a_failed_rollback_is_reported_not_hidden(hook, netns: NetNS, monkeypatch) -> None:
    def refuse(self, name, interface):
        raise CommandError(["ip", "addr", "add", str(interface), "dev", name], "no", 2)

    def cannot_delete(self, name):
        raise CommandError(["ip", "link", "delete", name], "Device or resource busy", 2)

    monkeypatch.setattr(Kernel, "add_address", refuse)
    monkeypatch.setattr(Kernel, "delete", cannot_delete)
    with pytest.raises(BackendError, match="deleting the half-made bridge failed too"):
        hook.ensure_bridge(bridge=BRIDGE, adopt=False)
    assert link_of(netns, NAME) is not None


@pytest.mark.privileged
def test_an_adopted_bridge_is_kept_when_a_call_fails(hook, netns: NetNS, monkeypatch) -> None:
    netns.run(["ip", "link", "add", NAME, "type", "bridge"])

    def refuse(self, name):
        raise CommandError(["ip", "link", "set", "dev", name, "up"], "boom", 1)

    monkeypatch.setattr(Kernel, "set_up", refuse)
    with pytest.raises(BackendError, match="boom"):
        hook.ensure_bridge(bridge=BRIDGE, adopt=True)
    assert link_of(netns, NAME) is not None


@pytest.mark.privileged
def test_without_privileges_the_error_quotes_the_command(netns: NetNS) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run a check as nobody")
    code = """
from ipaddress import IPv4Network
from locker.errors import BackendError
from locker.model import Bridge
from locker_ipr2 import Ipr2Backend
backend = Ipr2Backend()
print(backend.link_availability().usable)
try:
    backend.ensure_bridge(Bridge("p", "locker_p", IPv4Network("10.1.1.0/24")), False)
    print("no error")
except BackendError as exc:
    print(exc)
"""
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # as a non-root shell has it
    done = netns.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                      sys.executable, "-c", code], check=False, env=env)
    assert done.returncode == 0, done.stderr
    usable, error = done.stdout.splitlines()
    assert usable == "True"
    assert error == ("Cannot set up bridge 'locker_p': `ip link add name locker_p type bridge` "
                     "failed: RTNETLINK answers: Operation not permitted; run Locker as root "
                     "(it needs CAP_NET_ADMIN).")
    assert link_of(netns, "locker_p") is None


@pytest.mark.privileged
def test_locker_backends_lists_ipr2(netns: NetNS, tmp_path: Path) -> None:
    locker = Path(sys.executable).with_name("locker")
    if not locker.exists():
        pytest.skip(f"needs the installed locker command at {locker}")
    config = tmp_path / "host.yaml"
    config.write_text("# empty\n")
    done = netns.run([str(locker), "backends", "--json"], check=False,
                     env={**os.environ, "LOCKER_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    (entry,) = [b for b in json.loads(done.stdout)["link"]["backends"] if b["name"] == "ipr2"]
    assert entry["distribution"] == "lxc-locker-ipr2"
    assert entry["usable"], entry["reason"]
    assert "iproute2" in entry["reason"]
