"""A bad project file: exit status 2, the problem named with file and line,
and nothing made: no container, no bridge, no rule, no sysctl changed."""

from __future__ import annotations

import pytest

from world import World

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]

BAD = """\
containers:
  web:
    template: {name: busybox}
    ports: ["8080:80"]
  db:
    template: {name: busybox}
    ports: ["0:80"]
"""
BAD_LINE = 7


def _assert_nothing_made(world: World) -> None:
    assert world.container_names() == []
    assert world.bridges() == []
    dump = world.ruleset_dump()
    assert "locker" not in dump.lower(), dump
    forwarding = world.host.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip()
    assert forwarding == "0"


@pytest.mark.parametrize("command", ["validate", "create", "start", "ports", "cleanup"])
def test_a_bad_project_file_exits_2_naming_file_and_line_and_makes_nothing(
        world: World, command: str) -> None:
    project = world.project("bad", BAD)
    done = world.locker(project, command, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"locker.yaml:{BAD_LINE}:" in done.stderr, done.stderr
    assert "containers.db.ports" in done.stderr and "0:80" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    _assert_nothing_made(world)


# Values the LXC config would refuse when `start` writes it, after the bridge
# and the rules exist: the project file refuses them first.
LATE = {
    "cgroup": ("""\
containers:
  web:
    template: {name: busybox}
    cgroup: ["Memory.max=100M"]
""", 4, "containers.web.cgroup[0]", "Memory.max=100M"),
    "volume": ("""\
containers:
  web:
    template: {name: busybox}
    ports: ["8080:80"]
    volumes: ["/tmp/../tmp/x:/data"]
""", 5, "containers.web.volumes[0]", "/tmp/../tmp/x:/data"),
}


@pytest.mark.parametrize("command", ["validate", "start"])
@pytest.mark.parametrize("case", sorted(LATE))
def test_what_start_would_refuse_is_refused_before_anything_is_made(
        world: World, case: str, command: str) -> None:
    text, line, key, value = LATE[case]
    project = world.project("late", text)
    done = world.locker(project, command, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f'locker.yaml:{line}: {key}: "{value}": ' in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    _assert_nothing_made(world)


def test_an_absolute_project_path_is_named_as_given(world: World) -> None:
    project = world.project("bad", BAD)
    path = project / "locker.yaml"
    done = world.locker(world.root, "-f", str(path), "start", check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:{BAD_LINE}:" in done.stderr, done.stderr
    _assert_nothing_made(world)
