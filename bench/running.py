"""A project running in the end-to-end world, for benchmarks of whole
commands: its namespaces, temporary lxcpath and containers go afterwards,
also when the benchmark fails."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from world import World  # noqa: E402 (the e2e harness is not a package)


@contextmanager
def running_project(name: str, text: str) -> Iterator[tuple[World, Path]]:
    """The project ``name`` of ``text``, created and started (nftables,
    netlink); cleaned up and removed afterwards."""
    world = World(Path(tempfile.mkdtemp()), "nftables", "netlink")
    try:
        project = world.project(name, text)
        world.locker(project, "create")
        world.locker(project, "start")
        yield world, project
        world.locker(project, "cleanup")
        world.locker(project, "rm")
    finally:
        world.close()
