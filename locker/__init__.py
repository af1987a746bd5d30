"""Locker: groups of LXC containers with their networking, from one YAML file.

Plugin authors need only what this module exports::

    from locker import hookimpl, Forward, Link, Bridge, Ruleset, Tag, BackendError

The hooks and the rules a backend follows are in ``locker.hookspecs``; the
values hooks take and return in ``locker.model``; the conformance suites in
``locker.testing``.

The exports are imported on first use, so that ``locker --help`` does not
pay for pluggy.
"""

from importlib import import_module

from locker._version import __version__

_EXPORTS = {
    "Availability": "locker.model", "Blocker": "locker.model", "Bridge": "locker.model",
    "BridgeState": "locker.model", "Forward": "locker.model", "Link": "locker.model",
    "PROTOCOLS": "locker.model", "Ruleset": "locker.model", "TaggedRule": "locker.model",
    "BackendError": "locker.errors", "ConfigError": "locker.errors",
    "LockerError": "locker.errors", "JUMP_COMMENT": "locker.names", "Tag": "locker.names",
    "bridge_alias": "locker.names", "bridge_name": "locker.names",
    "is_locker_bridge": "locker.names", "hookimpl": "locker.hookspecs",
    "PLUGIN_API": "locker.plugins", "fault_point": "locker.faults",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


_RENAMED = {"fault_point": "point"}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), _RENAMED.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'locker' has no attribute {name!r}")
