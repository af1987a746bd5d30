"""Finding, choosing, loading and registering plugins.

Entry-point namespaces (stevedore): ``locker.firewall`` and ``locker.link``
hold backends, exactly one of each is loaded, by name; ``locker.plugins``
holds observers, all loaded. Names are listed from the entry-point metadata
without importing anything, so only the selected backends are imported.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple
from importlib.metadata import entry_points

import pluggy

from locker import hookspecs
from locker.errors import BackendError, BackendSelectionError, ConfigError
from locker.model import Availability
from locker.project import Setting

log = logging.getLogger(__name__)

FIREWALL = "locker.firewall"
LINK = "locker.link"
OBSERVERS = "locker.plugins"

class Role(NamedTuple):
    """What a backend namespace is: its role's name, its availability hook
    and the hooks its backend implements."""

    role: str
    availability_hook: str
    hooks: tuple[str, ...]


ROLES = {
    FIREWALL: Role("firewall", "firewall_availability", hookspecs.FIREWALL_HOOKS),
    LINK: Role("link", "link_availability", hookspecs.LINK_HOOKS),
}
#: Auto-detection asks the known backends first, in this order, then any
#: third-party one in alphabetical order.
PREFERENCE = {FIREWALL: ("nftables", "iptables"), LINK: ("netlink", "ipr2")}


def new_manager(*plugins: object) -> pluggy.PluginManager:
    """A PluginManager that knows Locker's hookspecs, with ``plugins``
    registered. Conformance suites use it to drive one backend alone."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for plugin in plugins:
        manager.register(plugin)
    return manager


def installed(namespace: str) -> dict[str, str]:
    """Backend name -> the distribution that provides it, in the order
    auto-detection tries them. Imports nothing."""
    found = {ep.name: (ep.dist.name if ep.dist else "?")
             for ep in entry_points(group=namespace)}
    preferred = [n for n in PREFERENCE.get(namespace, ()) if n in found]
    return {n: found[n] for n in preferred + sorted(set(found) - set(preferred))}


def load(namespace: str, name: str, settings: Mapping[str, Setting] | None = None) -> object:
    """Import and instantiate one backend by name, with the host file's
    settings for it (checked against the backend's ``SETTINGS``)."""
    from stevedore import driver
    from stevedore.exception import NoMatches

    role = ROLES[namespace].role
    try:
        manager = driver.DriverManager(namespace, name, invoke_on_load=False,
                                       on_load_failure_callback=_raise)
    except NoMatches:
        choices = ", ".join(installed(namespace)) or "none"
        raise BackendSelectionError(
            f"There is no {role} backend named {name!r}. Installed: {choices}.") from None
    except Exception as exc:
        raise BackendError(f"The {role} backend {name!r} cannot be loaded: {exc}") from exc
    factory = manager.driver
    arguments = settings_for(role, name, factory, settings or {})
    try:
        return factory(**arguments) if isinstance(factory, type) else factory
    except Exception as exc:
        raise BackendError(f"The {role} backend {name!r} cannot be loaded: {exc}") from exc


_SETTING_TYPES: dict[type, tuple[str, Callable[[str], object]]] = {
    str: ("text", str), int: ("whole number", int), float: ("number", float),
    bool: ("true or false", lambda text: {"true": True, "false": False}[text.lower()]),
}


def settings_for(role: str, name: str, factory: object,
                 settings: Mapping[str, Setting]) -> dict[str, object]:
    """The constructor's keyword arguments from the host file's settings.

    A backend declares what it takes as a class attribute ``SETTINGS``, a
    mapping of keyword argument to type (str, int, float or bool); the host
    file gives them as ``backends: {NAME: {KEYWORD: VALUE}}``."""
    declared: Mapping[str, type] = getattr(factory, "SETTINGS", {})
    problems, arguments = [], {}
    for key, setting in settings.items():
        if key not in declared:
            takes = ", ".join(sorted(declared)) or "no settings"
            problems.append(f"{setting.where}: unknown setting of the {role} backend "
                            f"{name!r}, which takes {takes}")
            continue
        what, convert = _SETTING_TYPES[declared[key]]
        try:
            arguments[key] = convert(setting.value)
        except (ValueError, KeyError):
            problems.append(f"{setting.where}: \"{setting.value}\": not a {what}")
    if problems:
        raise ConfigError(f"The host file's settings of the {role} backend {name!r} are "
                          f"wrong; correct them.", problems)
    return arguments


def _raise(manager, entrypoint, exc) -> None:
    raise exc


def availability(namespace: str, plugin: object) -> Availability:
    """Ask one backend whether it can work here; a crash is an answer too."""
    hook_name = ROLES[namespace].availability_hook
    try:
        answer = getattr(new_manager(plugin).hook, hook_name)()
    except Exception as exc:
        return Availability(False, f"its availability check failed: {exc}")
    if not isinstance(answer, Availability):
        return Availability(False, "it does not implement the availability check")
    return answer


@dataclass(frozen=True)
class Selected:
    namespace: str
    name: str
    plugin: object
    availability: Availability
    how: str  # "command line", "environment", "host file", "auto-detection"


def select(namespace: str, requested: str | None, how: str,
           warn: Callable[[str], None],
           settings: Mapping[str, Mapping[str, Setting]] | None = None) -> Selected:
    """The backend to use: ``requested`` when given (``how`` says where the
    name came from), else the first installed one that can work here.
    ``settings``: the host file's settings of each backend, by name."""
    settings = settings or {}
    role = ROLES[namespace].role
    option = "--backend" if namespace == FIREWALL else "--link-backend"
    if requested:
        plugin = load(namespace, requested, settings.get(requested))
        answer = availability(namespace, plugin)
        if not answer.usable:
            raise BackendError(
                f"The {role} backend {requested!r} ({how}) cannot work on this host: "
                f"{answer.reason}")
        if answer.warning:
            warn(answer.warning)
        return Selected(namespace, requested, plugin, answer, how)
    reasons = []
    for name in installed(namespace):
        try:
            plugin = load(namespace, name, settings.get(name))
        except (BackendError, BackendSelectionError) as exc:
            reasons.append(f"{name}: {exc}")
            continue
        answer = availability(namespace, plugin)
        if answer.usable and answer.auto:
            return Selected(namespace, name, plugin, answer, "auto-detection")
        if answer.usable:
            reasons.append(f"{name}: works, but is never picked automatically; "
                           f"choose it with {option} {name}")
        else:
            reasons.append(f"{name}: {answer.reason}")
    detail = "; ".join(reasons) if reasons else "none is installed"
    raise BackendError(
        f"No {role} backend can be picked automatically on this host ({detail}). "
        f"Install one, or choose one with {option}.")


def register(firewall: Selected, link: Selected,
             observers: Iterable[tuple[str, object]] = (),
             warn: Callable[[str], None] = log.warning) -> pluggy.PluginManager:
    """One PluginManager with the two backends and the observers, checked:
    each backend speaks this plugin API, implements every hook of its role
    and none of another role's, and names no hook that does not exist; every
    operation hook has exactly one implementation. An observer that breaks
    a rule is left out with a warning; its event hooks report what they
    raise instead of stopping the others."""
    manager = new_manager()
    for chosen in (firewall, link):
        check_backend(chosen.namespace, chosen.name, chosen.plugin)
        manager.register(chosen.plugin, name=f"{chosen.namespace}:{chosen.name}")
    for name, observer in observers:
        try:
            check_hook_names(f"plugin {name!r}", observer)
            manager.register(_Guarded(name, observer, warn), name=f"{OBSERVERS}:{name}")
        except Exception as exc:
            warn(f"The plugin {name!r} was not loaded: {exc}")
    check_single_implementations(manager)
    return manager


#: The plugin API this Locker speaks. A backend says which one it was
#: written for with a class attribute ``locker_api = 2``; the number goes up
#: when a hook's contract changes in a way an older backend would break.
PLUGIN_API = 2

_MARKER = hookspecs.PROJECT_NAME + "_impl"  # where pluggy's hookimpl marker keeps its options


def implemented_hooks(plugin: object) -> set[str]:
    """The names of the plugin's attributes marked with ``@hookimpl``."""
    return {name for name in dir(plugin)
            if not name.startswith("_") and hasattr(getattr(plugin, name, None), _MARKER)}


def check_hook_names(who: str, plugin: object) -> None:
    unknown = sorted(implemented_hooks(plugin) - set(hookspecs.ALL_HOOKS))
    if unknown:
        raise BackendSelectionError(
            f"The {who} marks {', '.join(unknown)} with @hookimpl, but Locker has no hook of "
            f"that name (misspelt?). Its hooks are listed in locker.hookspecs.")


def check_backend(namespace: str, name: str, plugin: object) -> None:
    """The rules a backend must keep to be registered (see ``register``)."""
    role = ROLES[namespace]
    who = f"{role.role} backend {name!r}"
    api = getattr(plugin, "locker_api", None)
    if api != PLUGIN_API:
        said = "declares no plugin API version" if api is None else f"was written for plugin API {api}"
        raise BackendSelectionError(
            f"The {who} {said}; this Locker speaks plugin API {PLUGIN_API} (see "
            f"locker.hookspecs). Install a version of the backend made for it.")
    check_hook_names(who, plugin)
    hooks = implemented_hooks(plugin)
    missing = sorted(set(role.hooks) - hooks)
    if missing:
        raise BackendSelectionError(
            f"The {who} does not implement {', '.join(missing)}, which every {role.role} "
            f"backend must (see locker.hookspecs).")
    foreign = sorted(hooks - set(role.hooks) - set(hookspecs.EVENT_HOOKS))
    if foreign:
        raise BackendSelectionError(
            f"The {who} implements {', '.join(foreign)}, which belong to another role; a "
            f"backend implements its own role's hooks (and may observe events).")


class _Guarded:
    """An observer as registered: each of its event hooks reports what it
    raises as a warning, so the other observers still hear of the event.
    Hook wrappers are passed through as they are."""

    def __init__(self, name: str, observer: object, warn: Callable[[str], None]) -> None:
        self._observer = observer
        for hook_name in implemented_hooks(observer):
            function = getattr(observer, hook_name)
            options = getattr(function, _MARKER)
            if options.get("hookwrapper") or options.get("wrapper"):
                setattr(self, hook_name, function)
            else:
                setattr(self, hook_name, _guard(name, hook_name, function, warn))


def _guard(name: str, hook_name: str, function: Callable, warn: Callable[[str], None]):
    @functools.wraps(function)
    def guarded(*args):  # pluggy passes the arguments by position, in argnames' order
        try:
            return function(*args)
        except Exception as exc:
            warn(f"The plugin {name!r} failed on {hook_name}: {exc}")
            return None
    guarded.__signature__ = inspect.signature(function)  # pluggy reads the argument names
    return guarded


def check_single_implementations(manager: pluggy.PluginManager) -> None:
    for role in ROLES.values():
        for hook_name in role.hooks:
            impls = getattr(manager.hook, hook_name).get_hookimpls()
            if len(impls) > 1:
                owners = ", ".join(manager.get_name(i.plugin) for i in impls)
                raise BackendSelectionError(
                    f"The hook {hook_name} must have exactly one implementation, "
                    f"found {len(impls)} ({owners}); only the {role.role} backend may "
                    f"implement it. Uninstall or disable the other plugin.")


def load_observers(warn: Callable[[str], None]) -> list[tuple[str, object]]:
    """Every plugin of ``locker.plugins``; one that fails to load is a
    warning, not a failure."""
    from stevedore import extension

    def failed(manager, entrypoint, exc) -> None:
        warn(f"The plugin {entrypoint.name!r} was not loaded: {exc}")

    manager = extension.ExtensionManager(
        OBSERVERS, invoke_on_load=False, on_load_failure_callback=failed)
    loaded = []
    for ext in manager:
        try:
            loaded.append((ext.name, ext.plugin() if isinstance(ext.plugin, type) else ext.plugin))
        except Exception as exc:
            warn(f"The plugin {ext.name!r} was not loaded: {exc}")
    return loaded


def emit(manager: pluggy.PluginManager, event: str, warn: Callable[[str], None],
         **kwargs) -> None:
    """Call an event hook through pluggy (so ``tryfirst``, wrappers and
    ``-vv`` tracing work); observers registered by ``register`` report what
    they raise themselves. Anything that still escapes is a warning."""
    try:
        getattr(manager.hook, event)(**kwargs)
    except Exception as exc:
        warn(f"A plugin failed on {event}: {exc}")


def trace_to(manager: pluggy.PluginManager, write: Callable[[str], None]) -> None:
    """Report every hook call and its result (``--trace``, for plugin authors)."""
    manager.trace.root.setwriter(write)
    manager.enable_tracing()
