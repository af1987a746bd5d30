"""The firewall conformance suite, run against the nftables backend."""

from locker.testing.firewall_suite import FirewallBackendTests


class TestNftablesConformance(FirewallBackendTests):
    backend_name = "nftables"
    rule_store = "nftables"
