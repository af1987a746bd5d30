"""Port ranges with real busybox containers and real traffic (issue 11.2).

Project ``ranges``: ``web`` forwards the shifted range 8000-8010 to its ports
9000-9010 and the range 7000-7002 to the same ports; busybox httpd answers
on the first, a middle and the last port of each, each port with its own
page. A second project ``other`` asks for a range overlapping the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from world import FIREWALL_PAIRS, HOST_IP, World, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]
WORLDS = FIREWALL_PAIRS

RANGES = """\
containers:
  web:
    template: {name: busybox}
    ports: ["8000-8010:9000-9010", "7000-7002:7000-7002"]
"""
OTHER = """\
containers:
  web:
    template: {name: busybox}
    ports: ["8010-8020:80-90"]
"""
SERVED = (9000, 9005, 9010, 7000, 7001, 7002)


def page(port: int) -> str:
    return f"port {port}\n"


def serve(world: World, container: str, port: int) -> None:
    """busybox httpd on ``port`` in ``container``, serving ``page(port)``."""
    www = world.rootfs(container) / f"www{port}"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text(page(port))
    done = world.attach(container, "/bin/busybox", "httpd", "-p", str(port), "-h", f"/www{port}")
    assert done.returncode == 0, f"httpd on {port} in {container}: {done.stderr}"
    wait_for(lambda: world.fetch_in(container, f"http://127.0.0.1:{port}/") == page(port),
             f"httpd on port {port} in {container}")


@pytest.fixture(scope="module")
def ranges(world: World) -> Iterator[Path]:
    directory = world.project("ranges", RANGES)
    try:
        world.locker(directory, "create")
        world.locker(directory, "start")
        for port in SERVED:
            serve(world, "ranges_web", port)
        yield directory
    finally:
        world.locker(directory, "cleanup", check=False)


def test_a_range_forwards_each_port_to_its_own(world: World, ranges: Path) -> None:
    for host_port, port in ((8000, 9000), (8005, 9005), (8010, 9010),
                            (7000, 7000), (7001, 7001), (7002, 7002)):
        assert world.fetch_outside(f"http://{HOST_IP}:{host_port}/") == page(port), host_port
    assert world.fetch_outside(f"http://{HOST_IP}:8011/") is None


def test_status_lists_a_range_as_one_forward(world: World, ranges: Path) -> None:
    status = world.status(ranges)
    assert status["in_place"], status["items"]
    forwards = sorted((f["host_port"], f["container_port"], f["count"], f["protocol"])
                      for f in status["rules"]["forwards"])
    assert forwards == [(7000, 7000, 3, "tcp"), (8000, 9000, 11, "tcp")]
    values = {i["value"] for i in status["items"] if i["kind"] == "forward"}
    web = status["containers"][0]["addresses"][0]
    assert values == {f"8000-8010/tcp -> {web}:9000-9010", f"7000-7002/tcp -> {web}:7000-7002"}
    text = world.locker(ranges, "status").stdout
    assert f"8000-8010/tcp -> {web}:9000-9010" in text


def test_rmports_and_ports_remove_and_restore_a_range(world: World, ranges: Path) -> None:
    world.locker(ranges, "rmports")
    assert world.status(ranges)["rules"]["forwards"] == []
    assert world.fetch_outside(f"http://{HOST_IP}:8005/") is None
    again = world.locker(ranges, "ports")
    assert "8000-8010/tcp" in again.stdout + again.stderr
    assert world.fetch_outside(f"http://{HOST_IP}:8005/") == page(9005)
    assert world.status(ranges)["in_place"]
    # a second run finds everything in place and changes nothing
    assert world.locker(ranges, "ports").stdout == world.locker(ranges, "ports").stdout


def test_a_range_overlapping_another_projects_is_refused(world: World, ranges: Path) -> None:
    other = world.project("other", OTHER)
    done = world.locker(other, "validate", check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert ('port "8010-8020/tcp": project ranges' in done.stderr
            and "forwards 8000-8010/tcp to its container web already" in done.stderr), \
        done.stderr


def test_a_bad_range_is_refused_naming_file_and_line(world: World) -> None:
    bad = world.project("bad", "containers:\n  web:\n    template: {name: busybox}\n"
                               "    ports: [\"8010-8000:9010-9000\", \"1-3:1-2\"]\n")
    done = world.locker(bad, "validate", check=False)
    assert done.returncode == 2
    assert ('locker.yaml:4: containers.web.ports[0]: "8010-8000:9010-9000": HOST_PORT '
            '"8010-8000" is an inverted range') in done.stderr, done.stderr
    assert ('locker.yaml:4: containers.web.ports[1]: "1-3:1-2": HOST_PORT "1-3" and '
            'CONTAINER_PORT "1-2" differ in length') in done.stderr, done.stderr
