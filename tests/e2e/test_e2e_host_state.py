"""The host state across projects and backends, with real containers and
traffic: conflicting host ports, backend switches (``--migrate``), a
command killed while creating the bridge, ``ls``, and ``restore`` after a
firewall reload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from world import HOST_IP, World

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]

OTHER_BACKEND = {"nftables": "iptables", "iptables": "nftables"}


def project(port: int) -> str:
    return f"""\
containers:
  one:
    template: {{name: busybox}}
    ports: ["{port}:80"]
"""


@pytest.fixture(scope="module")
def alpha(world: World) -> Iterator[Path]:
    """Project alpha (host port 8091), running and serving its page."""
    d = world.project("alpha", project(8091))
    world.locker(d, "create")
    world.locker(d, "start")
    world.serve_http("alpha_one", "alpha\n")
    yield d


@pytest.fixture(scope="module")
def beta(world: World, alpha: Path) -> Iterator[Path]:
    """Project beta (host port 8092), running and serving its page."""
    d = world.project("beta", project(8092))
    world.locker(d, "create")
    world.locker(d, "start")
    world.serve_http("beta_one", "beta\n")
    yield d


def wipe_rules(world: World) -> None:
    """What a firewall reload does: every rule gone."""
    world.host.run(["nft", "flush", "ruleset"])
    for table in ("filter", "nat"):
        world.host.run(["iptables-legacy", "-t", table, "-F"], check=False)
        world.host.run(["iptables-legacy", "-t", table, "-X"], check=False)
    if world.backend == "iptables":
        world.host.run(["iptables-legacy", "-P", "FORWARD", "DROP"])


def test_a_host_port_another_project_forwards_is_refused_naming_it(
        world: World, alpha: Path) -> None:
    twin = world.project("twin", project(8091))
    world.locker(twin, "create")
    for argv in (("validate",), ("start",), ("ports",)):
        done = world.locker(twin, *argv, check=False)
        assert done.returncode == 2, done.stderr
        assert "project alpha" in done.stderr and str(alpha / "locker.yaml") in done.stderr
        assert "its container one" in done.stderr
    assert "locker_twin" not in world.bridges()
    assert world.status(twin)["containers"][0]["state"] == "STOPPED"
    assert world.fetch_outside(f"http://{HOST_IP}:8091/") == "alpha\n"
    world.locker(twin, "rm")


def test_ls_lists_every_project_with_its_network(world: World, alpha: Path, beta: Path) -> None:
    listed = {p["project"]: p for p in json.loads(world.locker(alpha, "ls", "--json").stdout)}
    assert {"alpha", "beta"} <= set(listed)
    for name, d in (("alpha", alpha), ("beta", beta)):
        entry = listed[name]
        assert entry["file"] == str(d / "locker.yaml")
        assert entry["bridge"] == f"locker_{name}"
        assert entry["subnet"].endswith(".0/24")
        assert entry["backends"]["firewall"] == world.backend
        assert entry["containers"] == {"running": 1, "total": 1}
        assert entry["rules_complete"] is True
    text = world.locker(alpha, "ls").stdout
    assert "alpha" in text and "1/1" in text and "complete" in text


def test_restore_brings_back_every_project_after_a_reload(
        world: World, alpha: Path, beta: Path) -> None:
    wipe_rules(world)
    assert world.fetch_outside(f"http://{HOST_IP}:8091/") is None
    assert world.fetch_outside(f"http://{HOST_IP}:8092/") is None
    done = world.locker(alpha, "restore", "--json")
    summary = {p["project"]: p for p in json.loads(done.stdout)["projects"]}
    assert summary["alpha"]["error"] is None and summary["alpha"]["changes"] > 0
    assert summary["beta"]["error"] is None and summary["beta"]["changes"] > 0
    assert world.fetch_outside(f"http://{HOST_IP}:8091/") == "alpha\n"
    assert world.fetch_outside(f"http://{HOST_IP}:8092/") == "beta\n"
    assert world.status(alpha)["in_place"] and world.status(beta)["in_place"]
    # nothing was restarted, and a second restore has nothing to do
    assert "started" not in done.stderr
    again = json.loads(world.locker(alpha, "restore", "--json").stdout)["projects"]
    assert all(p["changes"] == 0 for p in again if p["project"] in ("alpha", "beta"))


def test_a_project_whose_file_is_gone_is_listed_as_such(world: World, alpha: Path) -> None:
    gone = world.project("gone", project(8093))
    world.locker(gone, "create")
    world.locker(gone, "start")
    (gone / "locker.yaml").rename(gone / "moved.yaml")
    try:
        listed = {p["project"]: p for p in json.loads(world.locker(alpha, "ls", "--json").stdout)}
        assert listed["gone"]["file_exists"] is False
        assert "file is gone" in listed["gone"]["problem"]
        assert "(gone)" in world.locker(alpha, "ls").stdout
    finally:
        (gone / "moved.yaml").rename(gone / "locker.yaml")
        world.locker(gone, "cleanup")
        world.locker(gone, "rm")


def test_a_backend_switch_is_refused_and_migrate_moves_the_rules(
        world: World, alpha: Path) -> None:
    if world.backend not in OTHER_BACKEND:
        pytest.skip("migrates between the two shipped firewall backends")
    first, second = world.backend, OTHER_BACKEND[world.backend]
    if first == "iptables":  # nftables' accepts cannot override a legacy DROP policy
        world.host.run(["iptables-legacy", "-P", "FORWARD", "ACCEPT"])
    try:
        refused = world.locker(alpha, "--backend", second, "start", backend=False, check=False)
        assert refused.returncode == 2
        assert f"made by the firewall backend {first!r}" in refused.stderr
        assert "--migrate" in refused.stderr
        assert world.status(alpha)["in_place"]

        world.locker(alpha, "--backend", second, "start", "--migrate", backend=False)
        assert world.fetch_outside(f"http://{HOST_IP}:8091/") == "alpha\n"
        moved = json.loads(world.locker(alpha, "--backend", second, "status", "--json",
                                        backend=False).stdout)
        assert moved["in_place"] and len(moved["rules"]["forwards"]) == 1
        assert "locker:alpha:" not in _store_of(world, first)
        assert "locker:alpha:" in _store_of(world, second)

        # stop and cleanup use the recorded backend whatever is chosen
        world.locker(alpha, "--backend", first, "stop", backend=False)
        assert "locker:alpha:one:" not in _store_of(world, second)

        world.locker(alpha, "--backend", second, "start", backend=False)
        world.serve_http("alpha_one", "alpha\n")
        world.locker(alpha, "--backend", first, "start", "--migrate", backend=False)
        assert world.fetch_outside(f"http://{HOST_IP}:8091/") == "alpha\n"
        assert "locker:alpha:" not in _store_of(world, second)
        assert "locker:alpha:" in _store_of(world, first)
    finally:
        if first == "iptables":
            world.host.run(["iptables-legacy", "-P", "FORWARD", "DROP"])


def _store_of(world: World, backend: str) -> str:
    if backend == "nftables":
        return world.host.run(["nft", "list", "ruleset"]).stdout
    return world.host.run(["iptables-legacy-save"]).stdout


def test_a_bridge_left_by_a_killed_start_is_adopted(world: World) -> None:
    crash = world.project("crash", project(8094))
    world.locker(crash, "create")
    killed = world.locker(crash, "start", check=False, env={"LOCKER_FAULT": "bridge-created"})
    assert killed.returncode == -9, killed.stderr
    links = json.loads(world.host.run(["ip", "-d", "-j", "link", "show", "locker_crash"]).stdout)
    assert "ifalias" not in links[0] or not links[0]["ifalias"]
    world.locker(crash, "start")
    assert world.status(crash)["in_place"]
    assert world.status(crash)["bridge"]["owned"]
    world.locker(crash, "cleanup")
    world.locker(crash, "rm")


def test_a_bridge_locker_never_meant_to_create_is_refused(world: World) -> None:
    other = world.project("foreign", project(8095))
    world.locker(other, "create")
    world.host.run(["ip", "link", "add", "locker_foreign", "type", "bridge"])
    try:
        done = world.locker(other, "start", check=False)
        assert done.returncode != 0
        assert "Locker did not create" in done.stderr
        assert world.status(other)["containers"][0]["state"] == "STOPPED"
    finally:
        world.host.run(["ip", "link", "del", "locker_foreign"])
        world.locker(other, "rm")


FOREIGN_DNAT = """\
table ip othertool {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        tcp dport 8096 dnat to 192.0.2.99:80
    }
}
"""


def test_a_dnat_of_another_tool_for_the_same_port_is_a_warning(world: World) -> None:
    taken = world.project("taken", project(8096))
    world.locker(taken, "create")
    world.host.run(["nft", "-f", "-"], input=FOREIGN_DNAT)
    try:
        done = world.locker(taken, "start")
        assert "Host port 8096/tcp is also forwarded by a rule of another tool" in done.stderr
        assert "nftables table ip othertool, chain prerouting" in done.stderr
        world.host.run(["nft", "delete", "table", "ip", "othertool"])
        assert "another tool" not in world.locker(taken, "ports").stderr
    finally:
        world.host.run(["nft", "delete", "table", "ip", "othertool"], check=False)
        world.locker(taken, "cleanup")
        world.locker(taken, "rm")
