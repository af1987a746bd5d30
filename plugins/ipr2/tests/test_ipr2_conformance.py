"""The ipr2 backend against the real kernel: Locker's link conformance
suite, unchanged."""

from __future__ import annotations

import pytest

from locker.testing.link_suite import LinkBackendTests
from locker_ipr2 import Ipr2Backend


@pytest.mark.privileged
class TestIpr2Conformance(LinkBackendTests):
    def make_backend(self) -> object:
        return Ipr2Backend()
