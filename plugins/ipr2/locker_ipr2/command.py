"""Running ``ip``: always an argument list, never a shell string, in the
network namespace of the calling thread (a child process inherits it), with
``LC_ALL=C`` so that its messages do not depend on the locale.

A command that fails raises ``CommandError``, which quotes the command and
what it wrote to stderr.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

#: Where ip lives when PATH lacks the sbin directories (a non-root shell).
FALLBACK_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
TIMEOUT = 30.0


class CommandError(Exception):
    """``ip ...`` could not be run or exited non-zero."""

    def __init__(self, argv: Sequence[str], stderr: str, returncode: int | None = None) -> None:
        self.argv = list(argv)
        self.stderr = " ".join(stderr.split())
        self.returncode = returncode
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"`{shlex.join(self.argv)}` failed: {self.stderr or 'no message'}"

    def says(self, *phrases: str) -> bool:
        """Whether stderr holds any of ``phrases``."""
        return any(phrase in self.stderr for phrase in phrases)


def find_tool(name: str = "ip") -> str | None:
    """The path of ``name`` on PATH or in the usual sbin directories."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(FALLBACK_DIRS))


class Ip:
    """The ``ip`` command at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self, *args: str) -> str:
        """``ip ARGS``; its stdout. ``CommandError`` when it fails."""
        shown = ["ip", *args]
        env = {**os.environ, "LC_ALL": "C"}
        try:
            done = subprocess.run([self.path, *args], capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, env=env, timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandError(shown, str(exc)) from exc
        if done.returncode != 0:
            raise CommandError(shown, done.stderr, done.returncode)
        return done.stdout

    def json(self, *args: str) -> list[dict[str, Any]]:
        """``ip -j ARGS``, parsed (an empty output is an empty list)."""
        out = self.run("-j", *args)
        if not out.strip():
            return []
        try:
            found = json.loads(out)
        except ValueError as exc:
            raise CommandError(["ip", "-j", *args], f"printed no valid JSON ({exc})") from exc
        if not isinstance(found, list):
            raise CommandError(["ip", "-j", *args], "printed JSON that is not a list")
        return found
