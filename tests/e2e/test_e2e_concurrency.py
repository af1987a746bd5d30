"""Commands racing each other as real processes on one project: each race
ends in the state one of the two sequential orders gives (see the lock
discipline in ``locker/hostlock.py``)."""

from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path

import pytest

from world import World, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]

PROJECT = """\
containers:
  web:
    template: {name: busybox}
    ports: ["8090:80"]
    links: ["db:database"]
  db:
    template: {name: busybox}
"""
ROUNDS = 3


@pytest.fixture(scope="module")
def race(world: World) -> Path:
    d = world.project("race", PROJECT)
    world.locker(d, "create")
    return d


def together(world: World, d: Path, *commands: tuple[str, ...]) -> list[subprocess.Popen]:
    """Start every command at once, then wait for all; each must succeed."""
    running = [world.locker_started(d, *argv) for argv in commands]
    for proc, argv in zip(running, commands):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"locker {' '.join(argv)}: {err}"
    return running


def paused(world: World, d: Path, point: str, *argv: str) -> tuple[subprocess.Popen, Path]:
    """``locker ARGV`` started and held at the fault point ``point``
    (``locker.faults``) until the returned marker file is removed."""
    marker = world.root / f"pause-{point}"
    proc = world.locker_started(d, *argv, env={"LOCKER_PAUSE": point,
                                               "LOCKER_PAUSE_FILE": str(marker)})
    wait_for(marker.exists, f"locker {' '.join(argv)} to reach {point}", timeout=120)
    return proc, marker


def read_until(proc: subprocess.Popen, text: str, timeout: float = 60.0) -> str:
    """What ``proc`` wrote to stderr up to the line holding ``text``."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
        line = proc.stderr.readline() if ready else ""
        seen.append(line)
        if text in line:
            return "".join(seen)
        if ready and not line:
            break
    raise AssertionError(f"no line with {text!r} from the process: {''.join(seen)!r}")


def finish(proc: subprocess.Popen, what: str) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{what}: {err}"
    return err


def tags_of(world: World, container: str) -> list[str]:
    return [line for line in world.ruleset_dump().splitlines()
            if f"locker:race:{container}:" in line]


def test_stop_racing_ports_never_leaves_the_stopped_containers_rules(
        world: World, race: Path) -> None:
    for _ in range(ROUNDS):
        world.locker(race, "start")
        together(world, race, ("stop", "web"), ("ports",))
        status = world.status(race)
        assert {c["name"]: c["state"] for c in status["containers"]}["web"] == "STOPPED"
        assert tags_of(world, "web") == []
        assert status["in_place"], world.locker(race, "status").stdout


def test_cleanup_racing_start_ends_as_one_of_the_two_orders(world: World, race: Path) -> None:
    for _ in range(ROUNDS):
        world.locker(race, "start")
        together(world, race, ("cleanup",), ("start",))
        status = world.status(race)
        states = {c["state"] for c in status["containers"]}
        if status["bridge"]["exists"]:  # cleanup, then start
            assert states == {"RUNNING"} and status["in_place"]
        else:                           # start, then cleanup
            assert states == {"STOPPED"}
            assert tags_of(world, "web") == tags_of(world, "db") == []
    world.locker(race, "cleanup")


def test_a_start_during_a_cleanup_waits_for_it(world: World, race: Path) -> None:
    """Played in the worst order: cleanup has stopped the containers and not
    yet removed the rules and bridge when start comes. Without the project
    lock, start would run in between and cleanup would then take the
    bridge and rules from under the containers start had just started."""
    world.locker(race, "start")
    cleanup, marker = paused(world, race, "containers-stopped", "cleanup")
    start = world.locker_started(race, "start")
    try:
        said = read_until(start, "waiting for it")
    finally:
        marker.unlink()
        finish(cleanup, "cleanup")
    finish(start, "start")
    assert "changing project race" in said
    status = world.status(race)
    assert {c["state"] for c in status["containers"]} == {"RUNNING"}
    assert status["in_place"], world.locker(race, "status").stdout
    world.locker(race, "cleanup")


def test_a_ports_during_a_stop_leaves_no_rules_of_the_stopped_container(
        world: World, race: Path) -> None:
    world.locker(race, "start")
    stop, marker = paused(world, race, "containers-stopped", "stop", "web")
    ports = world.locker_started(race, "ports")
    marker.unlink()
    finish(stop, "stop")
    finish(ports, "ports")
    assert tags_of(world, "web") == []
    assert world.status(race)["in_place"]
    world.locker(race, "cleanup")


def test_two_links_at_once_give_what_one_gives(world: World, race: Path) -> None:
    world.locker(race, "start")
    world.locker(race, "rmlinks")
    together(world, race, ("links",), ("links",))
    status = world.status(race)
    assert status["in_place"]
    web = next(c for c in status["containers"] if c["name"] == "web")
    assert [h["names"] for h in web["hosts"]].count(["db", "database"]) == 1
    assert len(json.loads(world.locker(race, "status", "--json").stdout)["rules"]["links"]) == 1
    world.locker(race, "cleanup")
