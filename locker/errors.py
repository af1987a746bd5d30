"""The few errors Locker raises on purpose; the CLI maps them to exit codes."""

from __future__ import annotations


class LockerError(Exception):
    """An operation failed (exit status 1). The message is one or more
    complete sentences: what went wrong and what to do."""

    exit_status = 1


class Invalid(ValueError):
    """A value breaks its grammar; the message says what is wrong and what
    to do, without the place (the caller adds that)."""


class ConfigError(LockerError):
    """Bad usage, or a bad project or host file (exit status 2)."""

    exit_status = 2

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class BackendError(LockerError):
    """A backend could not be loaded or failed to apply a change."""


class BackendSelectionError(ConfigError):
    """No such backend, or the installed plugins do not add up to exactly one
    implementation of each operation hook (exit status 2)."""


class ContainerError(LockerError):
    """One container's operation (or one step of a command) failed: the
    original error, named.

    Keeps the original's exit status, problems and type (as ``original``
    and ``__cause__``), so nothing is lost on the way to the CLI.
    """

    def __init__(self, container: str, original: LockerError) -> None:
        super().__init__(f"{container}: {original}")
        self.container = container
        self.original = original
        self.exit_status = original.exit_status
        self.problems = list(getattr(original, "problems", []))
        self.__cause__ = original


class Failures(LockerError):
    """Several steps failed; ``errors`` holds each one. The exit status is
    the gravest of theirs."""

    def __init__(self, errors: list[LockerError], heading: str | None = None) -> None:
        lines = ([heading] if heading else []) + [str(e) for e in errors]
        super().__init__("\n".join(lines))
        self.errors = list(errors)
        self.exit_status = max(e.exit_status for e in errors)
        self.problems = [p for e in errors for p in getattr(e, "problems", [])]


def raise_all(errors: list[LockerError], heading: str | None = None) -> None:
    """Raise the one error, or all of them together; nothing when empty."""
    if len(errors) == 1 and heading is None:
        raise errors[0]
    if errors:
        raise Failures(errors, heading)


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived. Like KeyboardInterrupt a BaseException, so
    that no ``except LockerError`` (or ``except Exception``) swallows it; it
    is raised only between two changes, never in the middle of one (see
    ``locker.journal``). The CLI reports it in one line and exits with
    128 + the signal's number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP)."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signum)
        self.signum = signum
        try:
            self.signal_name = signal.Signals(signum).name
        except ValueError:
            self.signal_name = f"signal {signum}"

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class NotCreated(LockerError):
    """Containers a command needs do not exist (exit status 1); each was
    reported as ``NAME: not created`` in its place already."""

    def __init__(self, containers: list[str]) -> None:
        self.containers = list(containers)
        super().__init__(f"not created: {', '.join(containers)}; `locker create` creates "
                         f"them, `locker up` creates and starts them.")
