"""pytest fixtures for Locker and its plugins. Opt-in, so that it never
loads into unrelated test runs: ``pytest -p locker.testing.pytest_plugin``,
``addopts = "-p locker.testing.pytest_plugin"`` under
``[tool.pytest.ini_options]`` (as Locker's four distributions do), or
``pytest_plugins = ["locker.testing.pytest_plugin"]`` in a top-level
``conftest.py``.

- ``netns``: a fresh network namespace; the test process is inside it for
  the duration of the test. Skips where root or ``ip`` is missing. The
  namespace is entered while the test process has one thread, and the test
  function runs in a process of its own forked from there, so every thread
  a backend starts is inside the namespace, and none outlives the test.
- ``netns_factory``: makes more namespaces (not entered), all deleted after
  the test.

Options: ``--locker-firewall NAME`` and ``--locker-link NAME`` choose the
backends a backend-agnostic suite runs against (Locker's end-to-end tests,
``tests/e2e``, read them: ``backends_from_options``).

With ``LOCKER_TESTS_NO_SKIP=1`` in the environment (Locker's CI sets it), a
skipped test fails instead, so that a machine missing a tool or a kernel
feature cannot pass the run quietly; a test whose requirement is optional
on purpose carries ``@pytest.mark.may_skip``.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Iterator

import pytest

# The suites' assertions explain themselves (pytest's rewriting), also in a
# third-party backend's test run; registered before the suites are imported.
pytest.register_assert_rewrite("locker.testing.firewall_suite", "locker.testing.link_suite",
                               "locker.testing.contract")

from locker.testing.netns import NetNS, current_netns_inode, missing_requirements


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a test that uses ``netns`` in a child process (see the module
    docstring): its outcome comes back through a pipe."""
    if "netns" not in pyfuncitem.fixturenames:
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        outcome = b""
        try:
            pyfuncitem.obj(**arguments)
        except pytest.skip.Exception as exc:
            outcome = b"skip\0" + str(exc.msg).encode()
        except BaseException as exc:  # everything goes back to the parent, which reports it
            outcome = b"fail\0" + "".join(traceback.format_exception(exc)).encode()
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(outcome)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read()
    _, status = os.waitpid(child, 0)
    kind, _, detail = outcome.partition(b"\0")
    if kind == b"skip":
        pytest.skip(detail.decode())
    if kind == b"fail":
        pytest.fail(f"in the test's own process:\n{detail.decode()}", pytrace=False)
    if status != 0:
        pytest.fail(f"the test's own process ended with status {status}", pytrace=False)
    return True


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("locker", "Locker's test kit")
    group.addoption("--locker-firewall", metavar="NAME", default=None,
                    help="the installed firewall backend (entry point in locker.firewall) "
                         "that backend-agnostic suites such as Locker's tests/e2e run against")
    group.addoption("--locker-link", metavar="NAME", default=None,
                    help="the installed link backend (entry point in locker.link) that "
                         "backend-agnostic suites run against")


def backends_from_options(config: pytest.Config,
                          pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``pairs`` (firewall, link) with the firewall and the link backend the
    options name put in: both given, the one pair; one given, each pair
    with it in its place (without repeats); none, ``pairs`` as they are."""
    firewall = config.getoption("locker_firewall", default=None)
    link = config.getoption("locker_link", default=None)
    chosen = [(firewall or f, link or l) for f, l in pairs]
    return list(dict.fromkeys(chosen))


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
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if others:
        pytest.fail(f"threads {others} exist before the test enters its network namespace; "
                    f"they would stay in the machine's own. Start threads inside the test "
                    f"or a fixture that uses netns.")
    home = current_netns_inode()
    ns = netns_factory()
    with ns.entered():
        assert current_netns_inode() != home, "failed to leave the machine's namespace"
        yield ns
    assert current_netns_inode() == home
