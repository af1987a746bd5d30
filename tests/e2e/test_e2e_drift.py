"""Drift, seen and repaired, on the real kernel with real traffic: every
case of issue 8's list. Each test breaks the project's network by hand the
way an administrator or another tool would, checks that ``status`` names
what differs (and ``status --check`` exits 1), repairs it with the command
``status`` names, and checks the traffic."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from world import HOST_IP, World

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]

PROJECT = """\
containers:
  web:
    template: {name: busybox}
    ports: ["8080:80"]
  db:
    template: {name: busybox}
"""
PAGE = "drift web\n"


class HandEdits:
    """Changes to Locker's rules made with the backend's own command-line
    tools, as an administrator would (independent of Locker's code)."""

    def __init__(self, world: World) -> None:
        if world.backend not in ("nftables", "iptables"):
            pytest.skip(f"editing rules by hand needs to know {world.backend}'s tools")
        self.world = world
        self.nft = world.backend == "nftables"

    def _nft_rules(self) -> list[dict]:
        out = self.world.host.run(["nft", "-j", "-a", "list", "table", "ip", "locker"]).stdout
        return [item["rule"] for item in json.loads(out)["nftables"] if "rule" in item]

    def _ipt_lines(self, table: str) -> list[str]:
        return self.world.host.run(["iptables-legacy", "-t", table, "-S"]).stdout.splitlines()

    def _ipt_find(self, table: str, pattern: str) -> str:
        return next(line for line in self._ipt_lines(table) if re.search(pattern, line))

    def _nft_elements(self, comment: str) -> list[tuple[str, str, object]]:
        """(map or set, key as nft text, a map's value) of each element
        carrying ``comment``: the nftables backend keeps forwards in maps."""
        out = self.world.host.run(["nft", "-j", "list", "table", "ip", "locker"]).stdout
        found = []
        for item in json.loads(out)["nftables"]:
            body = item.get("map") or item.get("set") or {}
            for elem in body.get("elem", []):
                key, value = (elem[0], elem[1]) if isinstance(elem, list) else (elem, None)
                if key["elem"].get("comment") == comment:
                    val = key["elem"]["val"]
                    text = " . ".join(str(v) for v in val["concat"]) \
                        if isinstance(val, dict) else str(val)
                    found.append((body["name"], text, value))
        return found

    def delete(self, comment: str, table: str = "filter") -> None:
        """Delete the rule (or the elements) carrying ``comment``."""
        if self.nft:
            for name, key, _ in self._nft_elements(comment):
                self.world.host.run(["nft", "delete", "element", "ip", "locker", name,
                                     f"{{ {key} }}"])
            rule = next((r for r in self._nft_rules() if r.get("comment") == comment), None)
            if rule is not None:
                self.world.host.run(["nft", "delete", "rule", "ip", "locker", rule["chain"],
                                     "handle", str(rule["handle"])])
        else:
            line = self._ipt_find(table, f'--comment "?{re.escape(comment)}"? ')
            self.world.host.run(["iptables-legacy", "-t", table,
                                 *line.replace("-A ", "-D ", 1).replace('"', "").split()])

    def delete_jump(self, target: str) -> None:
        if self.nft:
            rule = next(r for r in self._nft_rules() if r.get("comment") == "LOCKER"
                        and any(e.get("jump", {}).get("target") == target for e in r["expr"]))
            self.world.host.run(["nft", "delete", "rule", "ip", "locker", rule["chain"],
                                 "handle", str(rule["handle"])])
        else:
            table = "filter" if target == "LOCKER_FORWARD" else "nat"
            line = self._ipt_find(table, rf"^-A \w+ .*-j {target}\b")
            self.world.host.run(["iptables-legacy", "-t", table,
                                 *line.replace("-A ", "-D ", 1).replace('"', "").split()])

    def retarget_dnat(self, comment: str, port: int) -> None:
        """Make the tagged DNAT send its traffic to another container port."""
        if self.nft:   # the DNAT's port is an element of the project's port map
            name, key, _ = next(e for e in self._nft_elements(comment)
                                if e[0].endswith("_port"))
            self.world.host.run(["nft", "delete", "element", "ip", "locker", name,
                                 f"{{ {key} }}"])
            self.world.host.run(["nft", "add", "element", "ip", "locker", name,
                                 f'{{ {key} comment "{comment}" : {port} }}'])
        else:
            line = self._ipt_find("nat", f'--comment "?{re.escape(comment)}"? ')
            self.delete(comment, "nat")
            altered = re.sub(r"(--to-destination [\d.]+):\d+", rf"\1:{port}", line)
            chain = altered.split()[1]
            self.world.host.run(["iptables-legacy", "-t", "nat", "-I", chain, "1",
                                 *altered.replace('"', "").split()[2:]])

    def dump(self) -> str:
        return self.world.ruleset_dump()


@pytest.fixture(scope="module")
def drift(world: World) -> Path:
    d = world.project("drift", PROJECT)
    world.locker(d, "create")
    return d


@pytest.fixture
def up(world: World, drift: Path) -> Iterator[Path]:
    """The project running as its file says, everything in place."""
    (drift / "locker.yaml").write_text(PROJECT)
    world.locker(drift, "start")
    world.locker(drift, "ports")
    world.locker(drift, "links")
    world.serve_http("drift_web", PAGE)
    assert world.status(drift)["in_place"], world.locker(drift, "status").stdout
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGE
    yield drift


def text_status(world: World, d: Path) -> str:
    return world.locker(d, "status").stdout


def check(world: World, d: Path) -> tuple[int, str]:
    done = world.locker(d, "status", "--check", check=False)
    return done.returncode, done.stdout


def test_a_deleted_prerouting_jump_is_shown_and_restored(world: World, up: Path) -> None:
    HandEdits(world).delete_jump("LOCKER_PREROUTING")
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") is None
    code, differences = check(world, up)
    assert code == 1
    assert re.search(r"partial\s+chains .*LOCKER_PREROUTING", differences), differences
    assert "partial" in text_status(world, up)
    done = world.locker(up, "ports")
    assert "restored Locker's chains and jumps" in done.stderr, done.stderr
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGE
    assert check(world, up)[0] == 0


def test_a_forward_without_its_accept_is_partial_and_stop_removes_its_dnat(
        world: World, up: Path) -> None:
    HandEdits(world).delete("locker:drift:web:forward")
    code, differences = check(world, up)
    assert code == 1 and re.search(r"partial\s+forward\s+web: 8080/tcp", differences)
    world.locker(up, "stop", "web")
    assert "locker:drift:web:" not in HandEdits(world).dump()
    world.locker(up, "start")
    world.serve_http("drift_web", PAGE)
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGE


def test_an_altered_tagged_rule_is_replaced_by_the_repair(world: World, up: Path) -> None:
    HandEdits(world).retarget_dnat("locker:drift:web:dnat", 81)
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") is None  # to port 81: nothing there
    code, differences = check(world, up)
    assert code == 1
    assert re.search(r"stale\s+forward\s+web: 8080/tcp -> [\d.]+:81", differences), differences
    done = world.locker(up, "ports")
    assert re.search(r"web: removed forward 8080/tcp -> [\d.]+:81", done.stderr), done.stderr
    assert "web: added forward 8080/tcp" in done.stderr
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGE
    assert check(world, up)[0] == 0


def test_a_port_changed_in_the_file_is_flagged_and_start_says_what_it_repairs(
        world: World, up: Path) -> None:
    (up / "locker.yaml").write_text(PROJECT.replace("8080:80", "8081:80"))
    code, differences = check(world, up)
    assert code == 1
    assert re.search(r"stale\s+forward\s+web: 8080/tcp", differences), differences
    assert re.search(r"missing\s+forward\s+web: 8081/tcp", differences), differences
    done = world.locker(up, "start")
    assert "web: removed forward 8080/tcp" in done.stderr, done.stderr
    assert "web: added forward 8081/tcp" in done.stderr
    assert world.fetch_outside(f"http://{HOST_IP}:8081/") == PAGE
    assert world.fetch_outside(f"http://{HOST_IP}:8080/") is None


def test_a_container_removed_from_the_file_is_an_orphan_until_cleanup(
        world: World, drift: Path) -> None:
    (drift / "locker.yaml").write_text(PROJECT)
    world.locker(drift, "start")
    (drift / "locker.yaml").write_text(PROJECT.replace("    ports: [\"8080:80\"]\n", "")
                                       .replace("  web:\n    template: {name: busybox}\n", ""))
    try:
        status = world.locker(drift, "status").stdout
        assert re.search(r"orphan\s+container web", status), status
        assert re.search(r"stale\s+forward\s+web: 8080/tcp", status), status
        done = world.locker(drift, "ports")
        assert "web: removed forward 8080/tcp" in done.stderr, done.stderr
        assert "locker:drift:web:" not in HandEdits(world).dump()
        done = world.locker(drift, "cleanup", "--keep-orphans")
        assert "kept the orphans web" in done.stderr
        assert world.lxc("lxc-info", "-n", "drift_web", "-sH").stdout.strip() == "RUNNING"
        done = world.locker(drift, "cleanup")
        assert "web: stopped orphan container" in done.stderr, done.stderr
        assert world.lxc("lxc-info", "-n", "drift_web", "-sH").stdout.strip() == "STOPPED"
    finally:
        (drift / "locker.yaml").write_text(PROJECT)


FOREIGN_DROP = """\
table inet filter {
    chain forward {
        type filter hook forward priority 0; policy drop;
    }
}
"""


def test_another_tables_drop_is_warned_of_exactly_when_the_forward_is_dead(
        world: World, up: Path) -> None:
    """An admin's forward chain of policy drop in another nftables table
    (for the iptables backend: the nf_tables side it does not use)."""
    blocked = "so the project's forwards are dead"
    assert blocked not in world.locker(up, "start").stderr  # alive: no warning
    world.host.run(["nft", "-f", "-"], input=FOREIGN_DROP)
    try:
        assert world.fetch_outside(f"http://{HOST_IP}:8080/") is None
        done = world.locker(up, "start")
        warnings = [line for line in done.stderr.splitlines() if blocked in line]
        assert len(warnings) == 1, done.stderr
        assert "inet filter forward" in warnings[0] and "fix:" in warnings[0]
        code, differences = check(world, up)
        assert code == 1 and re.search(r"blocked\s+forward\s+web: 8080/tcp", differences)
        world.host.run(["sh", "-c", warnings[0].split("fix: ", 1)[1]])
        assert world.fetch_outside(f"http://{HOST_IP}:8080/") == PAGE
        assert blocked not in world.locker(up, "start").stderr
        assert check(world, up)[0] == 0
    finally:
        world.host.run(["nft", "delete", "table", "inet", "filter"], check=False)


def same_changes(one: list[dict], other: list[dict]) -> bool:
    """The same changes; containers change in parallel, so in any order."""
    def key(change: dict) -> str:
        return json.dumps(change, sort_keys=True)
    return sorted(map(key, one)) == sorted(map(key, other))


def state_files(world: World) -> dict[str, str]:
    return {str(p): p.read_text() for p in sorted(world.state_dir.glob("**/*")) if p.is_file()}


def test_plan_lists_what_start_then_does_and_changes_nothing(world: World) -> None:
    fresh = world.project("fresh", PROJECT.replace("8080:80", "8082:80"))
    world.locker(fresh, "create")
    try:
        before = (world.ruleset_dump(), world.bridges(), state_files(world))
        plan = json.loads(world.locker(fresh, "plan", "--json").stdout)
        assert plan["dry_run"] is True and plan["changes"]
        assert (world.ruleset_dump(), world.bridges(), state_files(world)) == before
        assert world.status(fresh)["containers"][0]["state"] == "STOPPED"
        real = json.loads(world.locker(fresh, "start", "--json").stdout)
        assert real["dry_run"] is False
        assert same_changes(real["changes"], plan["changes"])
        stop_plan = json.loads(world.locker(fresh, "stop", "--dry-run", "--json").stdout)
        assert world.status(fresh)["in_place"]
        stop = json.loads(world.locker(fresh, "stop", "--json").stdout)
        assert same_changes(stop["changes"], stop_plan["changes"])
    finally:
        world.locker(fresh, "cleanup")
        world.locker(fresh, "rm")
