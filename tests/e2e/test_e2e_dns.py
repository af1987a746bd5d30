"""The project's DNS forwarder: ``dns: ["$bridge"]`` resolves the project's
containers by name, ``NAME.PROJECT`` and fqdn from inside a container, and
``cleanup`` stops it."""

from __future__ import annotations

import pytest

from world import World

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]

PROJECT = """\
defaults:
  dns: ["$bridge"]
containers:
  web:
    template: {name: busybox}
  db:
    template: {name: busybox}
    fqdn: db.example.net
"""


def lookup(world: World, container: str, name: str) -> str:
    done = world.attach(container, "/bin/busybox", "nslookup", name)
    return done.stdout + done.stderr


def test_names_resolve_through_the_forwarder_on_the_bridge(world: World) -> None:
    d = world.project("names", PROJECT)
    world.locker(d, "create")
    try:
        done = world.locker(d, "start")
        assert "names: started DNS forwarder on 10.1.1.1" in done.stderr, done.stderr
        db_ip = world.status(d)["containers"][1]["configured_address"].split("/")[0]
        resolv = (world.rootfs("names_web") / "etc/resolv.conf").read_text()
        assert resolv == "nameserver 10.1.1.1\n"
        for name in ("db", "db.names", "db.example.net"):
            assert db_ip in lookup(world, "names_web", name), name
        assert world.status(d)["in_place"]
        world.locker(d, "stop", "db")
        assert db_ip not in lookup(world, "names_web", "db.names")
        done = world.locker(d, "cleanup")
        assert "names: stopped DNS forwarder" in done.stderr, done.stderr
        assert not (world.run_dir / "names").exists()
    finally:
        world.locker(d, "cleanup", check=False)
        world.locker(d, "rm")
