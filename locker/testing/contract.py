"""What the suites check of a backend before driving it: the checks the core
makes when it loads one (plugin API, hook names, roles), and that every hook
of its role is there, marked ``@hookimpl``, with the hookspec's arguments."""

from __future__ import annotations

import inspect

from locker import hookspecs, plugins
from locker.errors import BackendSelectionError


def hook_problems(namespace: str, plugin: object) -> list[str]:
    """One sentence per breach of the contract; [] when there is none."""
    role = plugins.ROLES[namespace]
    who = f"The {role.role} backend {type(plugin).__name__}"
    problems = []
    try:
        plugins.check_backend(namespace, type(plugin).__name__, plugin)
    except BackendSelectionError as exc:
        problems.append(str(exc))
    marked = plugins.implemented_hooks(plugin)
    for name in role.hooks:
        wanted = list(inspect.signature(getattr(hookspecs, name)).parameters)
        function = getattr(plugin, name, None)
        if function is None:
            problems.append(f"{who} lacks the hook {name}({', '.join(wanted)}).")
            continue
        if name not in marked:
            problems.append(f"{who} has {name} but it is not marked @hookimpl, so Locker "
                            f"never calls it.")
        if not callable(function):
            problems.append(f"{who}: {name} is not a method.")
            continue
        got = [p for p in inspect.signature(function).parameters]
        if got != wanted:
            problems.append(f"{who}: {name} takes ({', '.join(got)}); the hookspec says "
                            f"({', '.join(wanted)}), and the core calls it with those "
                            f"keyword arguments.")
    return problems
