"""Locker: groups of LXC containers with their networking, from one YAML file.

Plugin authors need only what this module exports::

    from locker import hookimpl, Forward, Link, Bridge, Ruleset, Tag
"""

from locker.errors import BackendError, ConfigError, LockerError
from locker.hookspecs import hookimpl
from locker.model import Availability, Bridge, BridgeState, Forward, Link, Ruleset
from locker.names import JUMP_COMMENT, Tag

__version__ = "0.1.0"

__all__ = [
    "Availability", "BackendError", "Bridge", "BridgeState", "ConfigError",
    "Forward", "JUMP_COMMENT", "Link", "LockerError", "Ruleset", "Tag",
    "__version__", "hookimpl",
]
