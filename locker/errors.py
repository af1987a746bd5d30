"""The few errors Locker raises on purpose; the CLI maps them to exit codes."""

from __future__ import annotations


class LockerError(Exception):
    """An operation failed (exit status 1). The message is one or more
    complete sentences: what went wrong and what to do."""

    exit_status = 1


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
