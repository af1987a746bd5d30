"""The firewall conformance suite, run against the nftables backend."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest

from locker.testing.firewall_suite import FirewallBackendTests
from locker.testing.netns import NetNS

from locker_nftables import NftablesBackend
from locker_nftables.rules import BASE_CHAINS

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("nft") is None, reason="needs the nft command")

#: Another tool's tables at the hooks Locker uses, some with counters off
#: so that the dump cannot change by itself.
FOREIGN = """
table inet filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state invalid drop comment "admin"
        iifname "eth9" oifname "eth8" accept
    }
}
table ip nat {
    chain PREROUTING {
        type nat hook prerouting priority dstnat; policy accept;
        tcp dport 2222 dnat to 192.0.2.5:22 comment "other tool"
    }
    chain POSTROUTING {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr 172.31.0.0/16 masquerade
    }
}
"""


def nft(netns: NetNS, *argv: str, **kwargs) -> str:
    return netns.run(["nft", *argv], **kwargs).stdout


@pytest.mark.privileged
class TestNftablesConformance(FirewallBackendTests):
    def make_backend(self) -> object:
        return NftablesBackend()

    def add_foreign_rules(self, netns: NetNS) -> None:
        netns.run(["nft", "-f", "-"], input=FOREIGN)

    def foreign_state(self, netns: NetNS) -> str:
        tables = [line.split()[1:] for line in nft(netns, "list", "tables").splitlines()]
        return "".join(nft(netns, "list", "table", family, name)
                       for family, name in sorted(tables) if (family, name) != ("ip", "locker"))

    def locker_state(self, netns: NetNS) -> str:
        return netns.run(["nft", "list", "table", "ip", "locker"], check=False).stdout

    def jump_counts(self, netns: NetNS) -> Mapping[str, int]:
        counts = {base.target: 0 for base in BASE_CHAINS}
        for line in self.locker_state(netns).splitlines():
            for target in counts:
                if f"jump {target} " in line and 'comment "LOCKER"' in line:
                    counts[target] += 1
        return counts

    @contextmanager
    def failing_batch(self, backend: NftablesBackend) -> Iterator[None]:
        """Append a rule for a chain that does not exist to the next batch:
        the kernel accepts everything before it, then the batch fails."""
        commit = backend._commit
        broken = {"add": {"rule": {"family": "ip", "table": "locker",
                                   "chain": "NO_SUCH_CHAIN", "expr": [{"accept": None}],
                                   "comment": "locker:alpha:broken"}}}

        def failing(commands, what):
            assert len(commands) > 1, "the batch must do something before failing"
            commit(commands + [broken], what)

        backend._commit = failing
        try:
            yield
        finally:
            backend._commit = commit
