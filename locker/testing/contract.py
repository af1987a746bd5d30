"""What the suites check of a backend before driving it: the checks the core
makes when it loads one (plugin API, hook names, roles), and that every hook
of its role is there, marked ``@hookimpl``, with the hookspec's arguments."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import pytest

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


class BackendSuite:
    """What both conformance suites share: the backend named by
    ``backend_name`` in the suite's ``namespace``, the contract checked
    before any test drives it, and the declared ``skips``."""

    pytestmark = [pytest.mark.privileged]
    namespace: str = ""
    backend_name: str | None = None
    skips: Mapping[str, str] = {}

    def make_backend(self) -> object:
        if not self.backend_name:
            raise NotImplementedError(
                f"{type(self).__name__} names no backend: set backend_name to its entry "
                f"point in {self.namespace} (or override make_backend)")
        return plugins.load(self.namespace, self.backend_name)

    @pytest.fixture(autouse=True)
    def declared_skips(self, request) -> None:
        tests = {n.removeprefix("test_") for n in dir(self) if n.startswith("test_")}
        unknown = sorted(set(self.skips) - tests)
        if unknown:
            pytest.fail(f"{type(self).__name__}.skips names {', '.join(unknown)}, which "
                        f"are not tests of the suite", pytrace=False)
        reason = self.skips.get(request.function.__name__.removeprefix("test_"))
        if reason:
            request.node.add_marker(pytest.mark.may_skip)
            pytest.skip(f"declared by {type(self).__name__}: {reason}")

    @pytest.fixture
    def backend(self, netns, request) -> object:
        backend = self.make_backend()
        problems = hook_problems(self.namespace, backend)
        if problems and request.function.__name__ != "test_the_backend_keeps_the_contract":
            pytest.fail("the backend breaks the hook contract:\n" + "\n".join(problems),
                        pytrace=False)
        return backend

    @pytest.fixture
    def hook(self, backend: object):
        return plugins.new_manager(backend).hook

    def test_the_backend_keeps_the_contract(self, backend) -> None:
        problems = hook_problems(self.namespace, backend)
        assert not problems, "\n".join(problems)
