"""``locker cleanup`` with two projects in one host namespace: it takes
down its own project and leaves the other, and the shared chains, alone."""

from __future__ import annotations

import re

import pytest

from world import HOST_IP, World

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]


def _project(port: int) -> str:
    return f"""\
containers:
  one:
    template: {{name: busybox}}
    ports: ["{port}:80"]
"""


def _chains(dump: str) -> list[str]:
    """Chain names in an ``nft list ruleset`` or ``iptables-save`` dump."""
    return [nft or ipt for nft, ipt in re.findall(r"^\s*chain (\S+) \{|^:(\S+)", dump, re.M)]


def _lines_of(dump: str, project: str) -> list[str]:
    return [line for line in dump.splitlines() if f"locker:{project}:" in line]


def test_cleanup_removes_its_project_only_and_keeps_the_chains(world: World) -> None:
    alpha = world.project("alpha", _project(8081))
    beta = world.project("beta", _project(8082))
    for d in (alpha, beta):
        world.locker(d, "create")
        world.locker(d, "start")
    world.serve_http("alpha_one", "alpha\n")
    world.serve_http("beta_one", "beta\n")
    assert world.fetch_outside(f"http://{HOST_IP}:8081/") == "alpha\n"
    assert world.fetch_outside(f"http://{HOST_IP}:8082/") == "beta\n"
    beta_rules, dump = world.status(beta)["rules"], world.ruleset_dump()
    assert _lines_of(dump, "alpha") and _lines_of(dump, "beta")

    world.locker(alpha, "cleanup")

    assert "locker_alpha" not in world.bridges()
    status = world.status(alpha)
    assert status["bridge"]["exists"] is False
    assert [c["state"] for c in status["containers"]] == ["STOPPED"]
    assert status["rules"]["nat"] == status["rules"]["forwards"] == []
    assert status["rules"]["links"] == []
    assert status["rules"]["chains_and_jumps"] is True
    after = world.ruleset_dump()
    assert _lines_of(after, "alpha") == []
    for chain in ("LOCKER_FORWARD", "LOCKER_PREROUTING"):
        assert chain in _chains(after), after
        assert (f"jump {chain}" if world.rules_via_nft else f"-j {chain}") in after
    assert world.fetch_outside(f"http://{HOST_IP}:8081/") is None

    # beta: untouched, rule for rule (with nftables: handle for handle)
    assert "locker_beta" in world.bridges()
    assert world.status(beta)["rules"] == beta_rules
    assert _lines_of(after, "beta") == _lines_of(dump, "beta")
    assert world.fetch_outside(f"http://{HOST_IP}:8082/") == "beta\n"

    # a second cleanup finds nothing left to do and succeeds
    world.locker(alpha, "cleanup")
    assert world.ruleset_dump() == after
