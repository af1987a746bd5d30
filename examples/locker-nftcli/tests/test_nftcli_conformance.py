"""The firewall conformance suite, run against the nftcli example backend."""

import pytest

from locker.errors import BackendError
from locker.plugins import new_manager
from locker.testing import firewall_suite as suite
from locker.testing.firewall_suite import FirewallBackendTests
from locker_nftcli import NftCliBackend

IPV4_ONLY = "the example writes IPv4 rules only and refuses IPv6 (test_ipv6_is_refused)"


class TestNftcliConformance(FirewallBackendTests):
    backend_name = "nftcli"
    rule_store = "nftables"
    skips = {  # {"TEST NAME without test_": "why it cannot apply"}
        "ipv6_values_list_back": IPV4_ONLY,
        "ipv6_rules_go_with_remove_and_cleanup": IPV4_ONLY,
        "traffic_ipv6_forwards_and_masquerade": IPV4_ONLY,
    }


@pytest.mark.privileged
@pytest.mark.parametrize("call", [
    lambda hook: hook.add_nat(bridges=[suite.BRIDGE1, suite.BRIDGE1_6]),
    lambda hook: hook.add_forward(forwards=suite.FORWARDS1[:1] + suite.FORWARDS6[:1]),
    lambda hook: hook.add_link(links=suite.LINKS1[:1] + suite.LINKS6[:1]),
], ids=["nat", "forward", "link"])
def test_ipv6_is_refused(netns, call) -> None:
    hook = new_manager(NftCliBackend()).hook
    with pytest.raises(BackendError, match="writes IPv4 rules only; a project with ipv6: true"):
        call(hook)
    assert hook.list_rules(project=None) == suite.Ruleset()
