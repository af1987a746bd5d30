"""The firewall conformance suite, run against the nftcli example backend."""

from locker.testing.firewall_suite import FirewallBackendTests


class TestNftcliConformance(FirewallBackendTests):
    backend_name = "nftcli"
    rule_store = "nftables"
    skips = {}  # {"TEST NAME without test_": "why it cannot apply"}
