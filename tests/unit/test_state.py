"""The host state: records written atomically, read back exactly, corrupt
ones reported and rebuilt, and what the operations remember in them."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from locker.errors import BackendError, ConfigError
from locker.model import BridgeState, Forward
from locker.ops import cleanup, lifecycle
from locker.state import VERSION, HostState, ProjectRecord, state_dir
from test_ops import Env, make_env, shop_project

RECORD = ProjectRecord(
    "shop", "/srv/shop/locker.yaml", lxcpath="/var/lib/lxc", bridge="locker_shop",
    subnet=IPv4Network("10.1.1.0/24"), firewall="nftables", link="netlink",
    containers={"web": IPv4Interface("10.1.1.2/24"), "db": None},
    forwards=(Forward("shop", "web", 8080, IPv4Address("10.1.1.2"), 80, "tcp",
                      IPv4Address("192.0.2.10")),))


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = make_env(tmp_path)
    env.create_all()
    return env


@pytest.fixture
def state(tmp_path: Path) -> tuple[HostState, list[str]]:
    warned: list[str] = []
    return HostState(tmp_path / "state", warned.append), warned


def test_a_record_reads_back_as_written(state) -> None:
    hosts, warned = state
    hosts.save(RECORD)
    assert hosts.load("shop") == RECORD
    assert hosts.all() == [RECORD]
    document = json.loads(hosts.path("shop").read_text())
    assert document["version"] == VERSION == 1
    assert document["bridge"] == {"name": "locker_shop", "subnet": "10.1.1.0/24",
                                  "creating": False}
    assert warned == []


def test_a_save_leaves_no_temporary_file_and_replaces_the_old(state) -> None:
    hosts, _ = state
    hosts.save(RECORD)
    inode = os.stat(hosts.path("shop")).st_ino
    hosts.save(RECORD.with_changes(firewall="iptables"))
    assert os.listdir(hosts.projects_dir) == ["shop.json"]
    assert os.stat(hosts.path("shop")).st_ino != inode  # renamed over, not rewritten
    assert hosts.load("shop").firewall == "iptables"


@pytest.mark.parametrize("text", ["{", "[]", '{"version": 99}', '{"version": 1}',
                                  '{"version": 1, "project": "blog", "file": "x", '
                                  '"bridge": {}, "backends": {}}'])
def test_a_corrupt_record_is_a_warning_and_counts_as_missing(state, text: str) -> None:
    hosts, warned = state
    hosts.projects_dir.mkdir(parents=True)
    hosts.path("shop").write_text(text)
    assert hosts.load("shop") is None
    assert len(warned) == 1 and "is corrupt" in warned[0] and "rebuilding it" in warned[0]


def test_an_unwritable_state_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Exception, match="Cannot write the host state"):
        HostState(blocker / "state", print).save(RECORD)


def test_the_state_directory_comes_from_the_environment_then_the_host_file() -> None:
    assert state_dir(None, {}) == Path("/var/lib/locker")
    assert state_dir("/srv/state", {}) == Path("/srv/state")
    assert state_dir("/srv/state", {"LOCKER_STATE_DIR": "/tmp/s"}) == Path("/tmp/s")


# ------------------------------------------------- what the operations keep

def test_start_records_the_file_bridge_backends_containers_and_forwards(env: Env) -> None:
    lifecycle.start(env.ctx, ["web", "db"])
    record = env.ctx.state.load("shop")
    assert record.file == str(env.ctx.project.path.resolve())
    assert (record.bridge, record.subnet) == ("locker_shop", IPv4Network("10.1.1.0/24"))
    assert (record.firewall, record.link) == ("memory", "memory")
    assert record.containers["web"] == IPv4Interface("10.1.1.2/24")
    assert {f.host_port for f in record.forwards} == {8080, 5353, 5432}
    assert not record.creating_bridge
    lifecycle.stop(env.ctx, ["db"])
    assert {f.host_port for f in env.ctx.state.load("shop").forwards} == {8080, 5353}


def test_cleanup_forgets_the_network_and_keeps_the_containers(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    cleanup.cleanup(env.ctx)
    record = env.ctx.state.load("shop")
    assert (record.subnet, record.firewall, record.forwards) == (None, None, ())
    for name in env.ctx.project.container_names:
        lifecycle.remove(env.ctx, [name])
    cleanup.cleanup(env.ctx)
    assert env.ctx.state.load("shop") is None


def test_a_host_port_another_project_forwards_is_refused_and_nothing_changes(
        tmp_path: Path) -> None:
    shop = make_env(tmp_path)
    twin = make_env(tmp_path, shop_project(tmp_path, "twin"), share=shop)
    twin.ctx.project = type(twin.ctx.project)(
        "twin", twin.ctx.project.path,
        tuple(c if c.name != "web" else type(c)("web", c.source, ports=c.ports)
              for c in shop.ctx.project.containers))
    shop.create_all()
    twin.create_all()
    lifecycle.start(shop.ctx, ["web"])
    before = (shop.firewall.rules, dict(shop.link.bridges))
    with pytest.raises(ConfigError, match="forwarded by another project") as caught:
        lifecycle.start(twin.ctx, ["web"])
    assert any("project shop" in p and "8080/tcp" in p for p in caught.value.problems)
    assert (shop.firewall.rules, dict(shop.link.bridges)) == before
    assert twin.runtime.containers["twin_web"].state == "STOPPED"
    with pytest.raises(ConfigError):
        lifecycle.reconcile(twin.ctx, "ports", None)


def test_a_bridge_left_without_its_alias_by_a_crash_is_adopted(env: Env) -> None:
    env.ctx.remember(creating_bridge=True, bridge="locker_shop", subnet=IPv4Network("10.1.9.0/24"))
    env.link.bridges["locker_shop"] = BridgeState("locker_shop", (), False, owned=False)
    lifecycle.start(env.ctx, ["web"])
    assert env.link.bridges["locker_shop"].up
    assert "shop: adopted bridge locker_shop 10.1.9.1/24" in env.said
    assert not env.ctx.state.load("shop").creating_bridge


def test_a_bridge_locker_never_meant_to_create_is_still_refused(env: Env) -> None:
    env.link.bridges["locker_shop"] = BridgeState("locker_shop", (), True, owned=False)
    with pytest.raises(BackendError, match="exists that Locker did not create"):
        lifecycle.start(env.ctx, ["web"])
    assert env.ctx.state.load("shop") is None or not env.ctx.state.load("shop").creating_bridge


def test_removing_the_last_container_after_cleanup_leaves_no_record(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    cleanup.cleanup(env.ctx)
    assert env.ctx.state.load("shop") is not None  # the containers are still there
    lifecycle.remove(env.ctx, list(env.ctx.project.container_names))
    assert env.ctx.state.load("shop") is None
