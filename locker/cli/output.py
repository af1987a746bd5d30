"""Talking to the user: data to stdout, messages to stderr, colour only on a
terminal, errors as one line each with a traceback only when asked."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

COLOURS = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}


@dataclass
class Output:
    colour: bool
    # the streams current when the Output is made, not when this module was imported
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    #: a progress line for long steps (stderr is a terminal, colours allowed)
    live: bool = False

    @classmethod
    def for_terminal(cls, no_color: bool, environ: Mapping[str, str]) -> Output:
        allowed = not no_color and "NO_COLOR" not in environ and environ.get("TERM") != "dumb"
        return cls(allowed and sys.stdout.isatty(), live=allowed and sys.stderr.isatty())

    def paint(self, text: str, colour: str) -> str:
        return f"\033[{COLOURS[colour]}m{text}\033[0m" if self.colour else text

    def print(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def say(self, message: str) -> None:
        print(message, file=self.stderr)

    def warn(self, message: str) -> None:
        print(f"locker: warning: {message}", file=self.stderr)

    def error(self, message: str) -> None:
        print(f"locker: error: {message}", file=self.stderr)

    def trace(self, message: str) -> None:
        print(f"locker: trace: {message.rstrip()}", file=self.stderr)

    def failure(self, exc: BaseException, verbose: int) -> int:
        """Report an exception and return the exit status it maps to."""
        from locker.errors import LockerError

        if verbose:
            traceback.print_exception(exc, file=self.stderr)
            for line in _details(exc):  # what LXC printed, in full
                print(f"  | {line}", file=self.stderr)
        if isinstance(exc, LockerError):
            self.error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            for line in str(exc).splitlines()[1:]:
                print(f"  {line}", file=self.stderr)
            for problem in getattr(exc, "problems", []):
                print(problem, file=self.stderr)
            return exc.exit_status
        if isinstance(exc, OSError):  # the host refused: no bug, say what and where
            where = f" {exc.filename}" if exc.filename else ""
            hint = ("; run locker as root" if isinstance(exc, PermissionError)
                    else "; run again with -v for the details")
            self.error(f"cannot use{where}: {exc.strerror or exc}{hint}.")
            return 1
        self.error(f"unexpected {type(exc).__name__}: {exc}. This is a bug in Locker or "
                   f"one of its plugins; run again with -v for the traceback.")
        return 1


def _details(exc: BaseException) -> list[str]:
    """The full output behind an error (``LxcFailed.details``), of it and of
    the errors it gathers or wraps."""
    found = list(getattr(exc, "details", []))
    for inner in [*getattr(exc, "errors", []), getattr(exc, "original", None)]:
        if inner is not None:
            found += _details(inner)
    return found
