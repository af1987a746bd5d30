"""The core's firewall conformance suite against the legacy iptables store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from helpers import foreign_dump, jumps, locker_dump
from locker.testing.firewall_suite import FirewallBackendTests

pytestmark = pytest.mark.skipif(shutil.which("iptables-legacy-restore") is None,
                                reason="needs iptables-legacy-restore (package iptables)")

FOREIGN = """\
*nat
:ADMIN_NAT - [0:0]
-A PREROUTING -p tcp --dport 2222 -m comment --comment admin -j DNAT --to-destination 192.0.2.5:22
-A PREROUTING -j ADMIN_NAT
-A POSTROUTING -s 198.51.100.0/24 -j MASQUERADE
-A ADMIN_NAT -p udp --dport 999 -j RETURN
COMMIT
*filter
:ADMIN - [0:0]
-A FORWARD -s 203.0.113.0/24 -j DROP
-A FORWARD -j ADMIN
-A ADMIN -p tcp --dport 22 -m comment --comment "admin ssh" -j ACCEPT
COMMIT
"""


@pytest.mark.privileged
class TestIptablesBackend(FirewallBackendTests):
    def make_backend(self) -> object:
        from locker_iptables import IptablesBackend
        return IptablesBackend()

    def add_foreign_rules(self, netns) -> None:
        netns.run(["iptables-legacy-restore", "-w", "--noflush"], input=FOREIGN)

    def foreign_state(self, netns) -> str:
        return foreign_dump(netns)

    def locker_state(self, netns) -> str:
        return locker_dump(netns)

    def jump_counts(self, netns) -> dict[str, int]:
        return jumps(netns)

    @contextmanager
    def failing_batch(self, backend) -> Iterator[None]:
        """Before the last commit of the next transaction, add a rule the
        kernel refuses (MASQUERADE outside nat POSTROUTING): the commit fails
        after Locker's own changes were staged, and tables committed before
        it must be rolled back."""
        import iptc

        armed = [True]

        def poison(name, table, last):
            if not (last and armed[0]):
                return
            armed[0] = False
            chain = "LOCKER_FORWARD" if name == "filter" else "LOCKER_PREROUTING"
            if not table.is_chain(chain):
                chain = "FORWARD" if name == "filter" else "PREROUTING"
            rule = iptc.Rule()
            rule.target = rule.create_target("MASQUERADE")
            iptc.Chain(table, chain).append_rule(rule)

        backend.kernel.before_commit = poison
        try:
            yield
        finally:
            backend.kernel.before_commit = None
        assert not armed[0], "the batch made no commit to poison"
