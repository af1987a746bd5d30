"""Finding, loading and registering plugins."""

from __future__ import annotations

import pluggy

from locker import hookspecs


def new_manager(*plugins: object) -> pluggy.PluginManager:
    """A PluginManager that knows Locker's hookspecs, with ``plugins``
    registered. Conformance suites use it to drive one backend alone."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for plugin in plugins:
        manager.register(plugin)
    return manager
