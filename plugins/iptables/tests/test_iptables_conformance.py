"""The core's firewall conformance suite against the legacy iptables store."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from helpers import foreign_dump, jumps, locker_dump, save
from locker.model import Forward
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


#: A foreign nf_tables forward chain (packets pass both rule stores).
FORWARD_DROP = """
table inet hostfw {
    chain forward {
        type filter hook forward priority filter + 10; policy drop;
        ct state established,related accept
    }
}
"""
TABLE_OF = {"LOCKER_FORWARD": "filter", "LOCKER_PREROUTING": "nat", "LOCKER_POSTROUTING": "nat"}


def legacy(netns, *argv: str) -> None:
    netns.run(["iptables-legacy", "-w", *argv])


def rules_of(netns) -> list[tuple[str, str, int, list[str]]]:
    """(table, chain, 1-based number, words) of each rule in
    ``iptables-legacy-save``."""
    found, numbers = [], {}
    for table, line in save(netns):
        words = shlex.split(line)
        if words[:1] == ["-A"]:
            numbers[table, words[1]] = numbers.get((table, words[1]), 0) + 1
            found.append((table, words[1], numbers[table, words[1]], words))
    return found


def comment_of(words: list[str]) -> str | None:
    return words[words.index("--comment") + 1] if "--comment" in words else None


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

    # -------------------------------- breaking Locker's rules (iptables-legacy)

    def _find(self, netns, comment: str, nth: int = 0) -> tuple[str, str, int, list[str]]:
        """(table, chain, 1-based rule number, words) of the nth rule with
        this comment in Locker's chains."""
        return [r for r in rules_of(netns) if r[1].startswith("LOCKER_")
                and comment_of(r[3]) == comment][nth]

    def delete_locker_rule(self, netns, comment: str, nth: int = 0) -> None:
        table, chain, number, _ = self._find(netns, comment, nth)
        legacy(netns, "-t", table, "-D", chain, str(number))

    def replace_with_dnat(self, netns, comment: str, forward: Forward, nth: int = 0) -> None:
        table, chain, number, _ = self._find(netns, comment, nth)
        daddr = ["-d", f"{forward.host_ip}/32"] if forward.host_ip else []
        legacy(netns, "-t", table, "-R", chain, str(number), *daddr, "-p", forward.protocol,
               "--dport", str(forward.host_port), "-m", "comment", "--comment", comment,
               "-j", "DNAT", "--to-destination",
               f"{forward.container_ip}:{forward.container_port}")

    def add_tagged_rule(self, netns, comment: str, chain: str) -> None:
        legacy(netns, "-t", TABLE_OF[chain], "-A", chain, "-p", "tcp", "--dport", "99",
               "-m", "comment", "--comment", comment, "-j", "ACCEPT")

    def delete_jump(self, netns, chain: str) -> None:
        table, parent, number, _ = next(r for r in rules_of(netns) if not r[1].startswith(
            "LOCKER_") and comment_of(r[3]) == "LOCKER" and r[3][-2:] == ["-j", chain])
        legacy(netns, "-t", table, "-D", parent, str(number))

    def add_jump(self, netns, chain: str) -> None:
        local = ["-m", "addrtype", "--dst-type", "LOCAL"] if chain == "LOCKER_PREROUTING" else []
        legacy(netns, "-t", TABLE_OF[chain], "-A", chain.removeprefix("LOCKER_"), *local,
               "-m", "comment", "--comment", "LOCKER", "-j", chain)

    def delete_chain(self, netns, chain: str) -> None:
        self.delete_jump(netns, chain)
        legacy(netns, "-t", TABLE_OF[chain], "-F", chain)
        legacy(netns, "-t", TABLE_OF[chain], "-X", chain)

    def add_forward_drop(self, netns) -> None:
        netns.run(["nft", "-f", "-"], input=FORWARD_DROP)

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
