"""pytest fixtures for Locker and its plugins (loaded through the
``pytest11`` entry point, so a plugin's tests get them by installing
Locker).

- ``netns``: a fresh network namespace; the test process is inside it for
  the duration of the test. Skips where root or ``ip`` is missing.
- ``netns_factory``: makes more namespaces (not entered), all deleted after
  the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from locker.testing.netns import NetNS, current_netns_inode, missing_requirements


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "privileged: needs root; runs inside a network namespace made for the test")
    config.addinivalue_line(
        "markers", "e2e: drives the installed locker command with real LXC containers")


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
