"""The hookspecs are the plugin author's reference: every hook documented,
grouped by role, and implemented exactly by the in-memory backends."""

from __future__ import annotations

import inspect

import pluggy
import pytest

from locker import hookimpl, hookspecs, plugins
from locker.testing.memory import MemoryFirewall, MemoryLink

ROLE_HOOKS = hookspecs.FIREWALL_HOOKS + hookspecs.LINK_HOOKS + hookspecs.EVENT_HOOKS


def spec_names() -> set[str]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {name for name, value in vars(hookspecs).items()
            if inspect.isfunction(value) and hasattr(value, marker)}


def implemented(plugin: object) -> set[str]:
    marker = f"{hookspecs.PROJECT_NAME}_impl"
    return {name for name, value in inspect.getmembers(plugin) if hasattr(value, marker)}


def test_every_hookspec_is_in_exactly_one_role() -> None:
    assert len(ROLE_HOOKS) == len(set(ROLE_HOOKS))
    assert set(ROLE_HOOKS) == spec_names()


@pytest.mark.parametrize("name", sorted(spec_names()))
def test_every_hook_has_a_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and len(doc.split()) >= 5, name


@pytest.mark.parametrize("name", ["firewall_availability", "list_rules", "link_availability",
                                  "allocate_subnet", "ensure_bridge", "find_bridge",
                                  "ensure_ip_forwarding"])
def test_first_result_hooks_say_so(name: str) -> None:
    function = getattr(hookspecs, name)
    assert function.locker_spec["firstresult"] is True
    assert "*First result.*" in " ".join(function.__doc__.split())


def test_no_other_hook_is_first_result() -> None:
    for name in spec_names():
        function = getattr(hookspecs, name)
        says_so = "*First result.*" in " ".join(function.__doc__.split())
        assert function.locker_spec["firstresult"] == says_so, name


def test_memory_backends_implement_exactly_their_role() -> None:
    assert implemented(MemoryFirewall()) == set(hookspecs.FIREWALL_HOOKS)
    assert implemented(MemoryLink()) == set(hookspecs.LINK_HOOKS)


def test_memory_backends_pass_pluggy_validation() -> None:
    manager = plugins.new_manager(MemoryFirewall(), MemoryLink())
    manager.check_pending()  # every hookimpl matches a hookspec
    plugins.check_single_implementations(manager)


def test_new_manager_rejects_an_implementation_with_a_wrong_argument() -> None:
    class Wrong:
        @hookimpl
        def add_forward(self, rules):  # the spec's argument is "forwards"
            pass

    with pytest.raises(pluggy.PluginValidationError):
        plugins.new_manager(Wrong())


def test_the_package_exports_the_hookimpl_marker() -> None:
    import locker

    assert locker.hookimpl is hookspecs.hookimpl
    assert hookspecs.hookimpl.project_name == "locker"


def test_everything_exported_for_plugin_authors_is_documented() -> None:
    import locker

    for name in locker.__all__:
        if name == "__version__":
            continue
        value = getattr(locker, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            doc = inspect.getdoc(value)
            assert doc and len(doc.split()) >= 5, f"locker.{name} has no docstring"


@pytest.mark.parametrize("name", ["Availability", "Blocker", "Bridge", "BridgeState", "Forward",
                                  "Link", "Ruleset", "TaggedRule"])
def test_every_value_type_is_exported_and_documented(name: str) -> None:
    import locker
    from locker import model

    assert getattr(locker, name) is getattr(model, name)
    assert len((inspect.getdoc(getattr(model, name)) or "").split()) >= 5


def test_the_hookspecs_state_what_the_core_guarantees() -> None:
    """The rules a plugin author may rely on are written down where they look."""
    doc = " ".join((hookspecs.__doc__ or "").split())
    for promise in ("valid by construction", "host lock", "plugin API"):
        assert promise in doc, promise
