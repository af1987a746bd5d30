"""Locker: groups of LXC containers with their networking, from one YAML file.

Plugin authors need only what this module exports::

    from locker import hookimpl, Forward, Link, Bridge, Ruleset, Tag

The exports are imported on first use, so that ``locker --help`` does not
pay for pluggy.
"""

from importlib import import_module

from locker._version import __version__

_EXPORTS = {
    "Availability": "locker.model", "Bridge": "locker.model", "BridgeState": "locker.model",
    "Forward": "locker.model", "Link": "locker.model", "Ruleset": "locker.model",
    "BackendError": "locker.errors", "ConfigError": "locker.errors",
    "LockerError": "locker.errors", "JUMP_COMMENT": "locker.names", "Tag": "locker.names",
    "hookimpl": "locker.hookspecs",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'locker' has no attribute {name!r}")
