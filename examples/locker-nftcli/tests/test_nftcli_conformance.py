"""The firewall conformance suite, run against the nftcli example backend."""

from locker.testing.firewall_suite import IPV6_TESTS, FirewallBackendTests


class TestNftcliConformance(FirewallBackendTests):
    backend_name = "nftcli"
    rule_store = "nftables"
    # {"TEST NAME without test_": "why it cannot apply"}
    skips = dict.fromkeys(IPV6_TESTS, "IPv4 only: it refuses IPv6 (see test_nftcli_ipv6)")
