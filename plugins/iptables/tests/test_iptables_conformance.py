"""The firewall conformance suite, run against the iptables backend."""

from locker.testing.firewall_suite import FirewallBackendTests


class TestIptablesConformance(FirewallBackendTests):
    backend_name = "iptables"
    rule_store = "iptables-legacy"
