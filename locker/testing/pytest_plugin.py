"""pytest fixtures for Locker and its plugins. Opt-in, so that it never
loads into unrelated test runs: ``pytest -p locker.testing.pytest_plugin``,
``addopts = "-p locker.testing.pytest_plugin"`` under
``[tool.pytest.ini_options]`` (as Locker's four distributions do), or
``pytest_plugins = ["locker.testing.pytest_plugin"]`` in a top-level
``conftest.py``.

- ``netns``: a fresh network namespace; the test process is inside it for
  the duration of the test. Skips where root or ``ip`` is missing.
- ``netns_factory``: makes more namespaces (not entered), all deleted after
  the test.

With ``LOCKER_TESTS_NO_SKIP=1`` in the environment (Locker's CI sets it), a
skipped test fails instead, so that a machine missing a tool or a kernel
feature cannot pass the run quietly; a test whose requirement is optional
on purpose carries ``@pytest.mark.may_skip``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from locker.testing.netns import NetNS, current_netns_inode, missing_requirements


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "privileged: needs root; runs inside a network namespace made for the test")
    config.addinivalue_line(
        "markers", "e2e: drives the installed locker command with real LXC containers")
    config.addinivalue_line(
        "markers", "may_skip: may skip even where LOCKER_TESTS_NO_SKIP is set")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and not hasattr(report, "wasxfail")
            and os.environ.get("LOCKER_TESTS_NO_SKIP") == "1"
            and item.get_closest_marker("may_skip") is None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped where LOCKER_TESTS_NO_SKIP=1 forbids it: {reason}"


@pytest.fixture
def netns_factory() -> Iterator:
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    made: list[NetNS] = []

    def make(prefix: str = "lockertest") -> NetNS:
        ns = NetNS(prefix)
        made.append(ns)
        return ns

    try:
        yield make
    finally:
        for ns in reversed(made):
            ns.delete()


@pytest.fixture
def netns(netns_factory) -> Iterator[NetNS]:
    home = current_netns_inode()
    ns = netns_factory()
    with ns.entered():
        assert current_netns_inode() != home, "failed to leave the machine's namespace"
        yield ns
    assert current_netns_inode() == home
