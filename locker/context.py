"""What one command works with: the project, the plugins, the runtime, and
the ways to talk to the user."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

from locker import names
from locker.errors import ConfigError
from locker.hostlock import host_lock
from locker.project import Project
from locker.runtime import Runtime


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _read_host_resolv() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


@dataclass
class Context:
    project: Project
    manager: pluggy.PluginManager
    runtime: Runtime
    say: Callable[[str], None] = _stderr
    warn: Callable[[str], None] = _stderr
    lock: Callable[[], AbstractContextManager] = host_lock
    host_resolv: Callable[[], str] = _read_host_resolv
    host_hosts: Path = field(default_factory=lambda: Path("/etc/hosts"))

    @property
    def hooks(self):
        return self.manager.hook

    @property
    def bridge_name(self) -> str:
        return names.bridge_name(self.project.name)

    def lxc(self, container: str) -> str:
        return names.lxc_name(self.project.name, container)

    def select(self, requested: Iterable[str]) -> tuple[str, ...]:
        """The containers a command works on, in the project file's order:
        those named on the command line, or all."""
        requested = list(requested)
        known = self.project.container_names
        unknown = [name for name in requested if name not in known]
        if unknown:
            raise ConfigError(
                f"{', '.join(unknown)}: no such container in {self.project.path}. "
                f"Its containers are: {', '.join(known)}.")
        return tuple(n for n in known if not requested or n in requested)
