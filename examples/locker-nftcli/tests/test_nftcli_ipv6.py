"""The example backend writes IPv4 only: it refuses IPv6 values clearly,
before changing anything, instead of ignoring them."""

import pytest

from locker.errors import BackendError
from locker.model import Ruleset
from locker.plugins import new_manager
from locker.testing import firewall_suite as suite
from locker_nftcli import NftCliBackend


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
    assert hook.list_rules(project=None) == Ruleset()
