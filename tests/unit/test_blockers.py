"""locker.blockers: what of other tools drops Locker's forwarded traffic.
No root, no kernel: chains are given as nft JSON or ``iptables -S`` text,
the host as a directory tree."""

from __future__ import annotations

import os
import subprocess
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from locker import blockers
from locker.blockers import FROM, TO, ChainRule, ForwardChain
from locker.model import Bridge

DEMO = Bridge("demo", "locker_demo", IPv4Network("10.1.1.0/24"))
OTHER = Bridge("other", "locker_other", IPv4Network("10.1.2.0/24"))


def match(key: str, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}}


ACCEPT = {"accept": None}
COUNTER = {"counter": {"packets": 0, "bytes": 0}}


# ------------------------------------------------------------ nft rules


@pytest.mark.parametrize("expr, rule", [
    ([match("iifname", "locker_demo"), ACCEPT], ChainRule(accepts_from=frozenset({"locker_demo"}))),
    ([match("oifname", "locker_demo"), COUNTER, ACCEPT],
     ChainRule(accepts_to=frozenset({"locker_demo"}))),
    ([match("iifname", {"set": ["a", "locker_demo"]}), ACCEPT],
     ChainRule(accepts_from=frozenset({"a", "locker_demo"}))),
    ([{"drop": None}], ChainRule(drops=True)),
    ([COUNTER, {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}], ChainRule(drops=True)),
    # Not recognised: conditional drops, other matches, other verdicts, negations.
    ([match("iifname", "eth0"), {"drop": None}], ChainRule()),
    ([match("iifname", "locker_demo"), match("oifname", "eth0"), ACCEPT], ChainRule()),
    ([match("iifname", "locker_demo", "!="), ACCEPT], ChainRule()),
    ([match("iifname", "locker_demo"), {"jump": {"target": "x"}}], ChainRule()),
    ([{"match": {"op": "in", "left": {"ct": {"key": "state"}},
                 "right": ["established", "related"]}}, ACCEPT], ChainRule()),
], ids=["iif", "oif-counter", "set", "drop", "reject", "conditional-drop", "two-matches",
        "negated", "jump", "ct-state"])
def test_nft_rules_are_read(expr, rule) -> None:
    assert blockers.nft_rule(expr) == rule


def chain(policy_drops: bool, *rules: ChainRule) -> ForwardChain:
    return ForwardChain("nftables chain inet filter forward", policy_drops, rules,
                        ("inet", "filter", "forward"))


FROM_DEMO = ChainRule(accepts_from=frozenset({"locker_demo"}))
TO_DEMO = ChainRule(accepts_to=frozenset({"locker_demo"}))
DROP = ChainRule(drops=True)


@pytest.mark.parametrize("forward_chain, missing", [
    (chain(False), ()),
    (chain(False, FROM_DEMO), ()),
    (chain(True), (FROM, TO)),
    (chain(True, FROM_DEMO), (TO,)),
    (chain(True, FROM_DEMO, TO_DEMO), ()),
    (chain(False, DROP), (FROM, TO)),
    (chain(False, FROM_DEMO, DROP, TO_DEMO), (TO,)),   # accepted too late
    (chain(False, FROM_DEMO, TO_DEMO, DROP), ()),
], ids=["accept", "accept-partly", "policy", "policy-from", "policy-both", "drop-rule",
        "too-late", "before-drop"])
def test_missing_directions(forward_chain, missing) -> None:
    assert blockers.missing_directions(forward_chain, "locker_demo") == missing


def test_chain_blockers_names_bridge_and_fixes_only_missing_directions() -> None:
    found = blockers.chain_blockers([chain(True, FROM_DEMO)], [DEMO, OTHER],
                                    blockers.nft_chain_fix)
    assert [b.what for b in found] == [
        "nftables chain inet filter forward drops forwarded traffic to locker_demo "
        "(policy drop)",
        "nftables chain inet filter forward drops forwarded traffic from and to "
        "locker_other (policy drop)"]
    assert found[0].fix == "nft 'insert rule inet filter forward oifname \"locker_demo\" accept'"
    assert found[1].fix.count("&&") == 1 and 'iifname "locker_other"' in found[1].fix


def test_the_fix_of_a_chain_makes_it_pass() -> None:
    # The rules the fix inserts, read back as nft lists them, let DEMO through.
    found = blockers.chain_blockers([chain(True)], [DEMO], blockers.nft_chain_fix)
    inserted = [blockers.nft_rule([match(key, "locker_demo"), ACCEPT])
                for key in ("oifname", "iifname") if f'{key} "locker_demo"' in found[0].fix]
    assert blockers.missing_directions(chain(True, *inserted), "locker_demo") == ()


def test_iptables_nft_tables_get_an_iptables_nft_fix() -> None:
    fix = blockers.nft_fix("ip", "filter", "FORWARD", "locker_demo", (FROM, TO))
    assert fix == ("iptables-nft -I FORWARD -i locker_demo -j ACCEPT && "
                   "iptables-nft -I FORWARD -o locker_demo -j ACCEPT")


def test_nft_chain_reads_policy_and_rules() -> None:
    read = blockers.nft_chain("inet", "fw", {"name": "fwd", "policy": "drop"},
                              [[match("iifname", "locker_demo"), ACCEPT]])
    assert read == ForwardChain("nftables chain inet fw fwd", True, (FROM_DEMO,),
                                ("inet", "fw", "fwd"))


# ------------------------------------------------------------- iptables


LEGACY = """\
-P FORWARD DROP
-A FORWARD -m comment --comment LOCKER -j LOCKER_FORWARD
-A FORWARD -i locker_demo -m comment --comment "let demo out" -j ACCEPT
-A FORWARD -s 10.0.0.0/8 -j DROP
-A FORWARD -o locker_demo -j ACCEPT
-A FORWARD -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -o locker_other -j ACCEPT
"""


def test_iptables_listing_is_read() -> None:
    read = blockers.iptables_chain("iptables-legacy chain filter FORWARD", "FORWARD", LEGACY)
    assert read.policy_drops
    assert read.rules == (ChainRule(), FROM_DEMO, ChainRule(), TO_DEMO, DROP,
                          ChainRule(accepts_to=frozenset({"locker_other"})))
    assert blockers.missing_directions(read, "locker_demo") == ()
    assert blockers.missing_directions(read, "locker_other") == (FROM, TO)


def test_iptables_fix() -> None:
    assert blockers.iptables_fix("iptables-legacy", "FORWARD", "locker_demo", (TO,)) == \
        "iptables-legacy -I FORWARD -o locker_demo -j ACCEPT"


def test_iptables_policy_accept_blocks_nothing() -> None:
    read = blockers.iptables_chain("x", "FORWARD", "-P FORWARD ACCEPT\n")
    assert blockers.missing_directions(read, "locker_demo") == ()


# ------------------------------------------------------------ firewalld


def write(root: Path, path: str, text: str | bytes) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text if isinstance(text, bytes) else text.encode())


class Runs:
    """A stand-in for run_briefly: answers by the argument list."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv):
        self.calls.append(tuple(argv))
        if tuple(argv) not in self.answers:
            return None
        rc, out = self.answers[tuple(argv)]
        return subprocess.CompletedProcess(argv, rc, out, "")


def test_firewalld_runs_when_its_pid_file_names_a_live_firewalld(tmp_path) -> None:
    write(tmp_path, "run/firewalld.pid", "4242\n")
    write(tmp_path, "proc/4242/cmdline", b"/usr/bin/python3\0/usr/sbin/firewalld\0--nofork\0")
    runs = Runs({})
    assert blockers.firewalld_running(tmp_path, runs)
    assert runs.calls == []


@pytest.mark.parametrize("cmdline", [None, b"/usr/bin/python3\0/usr/bin/other\0"],
                         ids=["dead", "another-process"])
def test_stale_firewalld_pid_file_is_not_running(tmp_path, cmdline) -> None:
    write(tmp_path, "run/firewalld.pid", "4242\n")
    if cmdline is not None:
        write(tmp_path, "proc/4242/cmdline", cmdline)
    assert not blockers.firewalld_running(tmp_path, Runs({}))


def test_firewalld_state_is_asked_only_where_its_runtime_directory_is(tmp_path) -> None:
    runs = Runs({("firewall-cmd", "--state"): (0, "running\n")})
    assert not blockers.firewalld_running(tmp_path, runs)
    assert runs.calls == []
    (tmp_path / "run/firewalld").mkdir(parents=True)
    assert blockers.firewalld_running(tmp_path, runs)
    assert not blockers.firewalld_running(
        tmp_path, Runs({("firewall-cmd", "--state"): (252, "not running\n")}))
    assert not blockers.firewalld_running(tmp_path, Runs({}))   # hung or missing


def test_firewalld_blockers_by_zone() -> None:
    runs = Runs({
        ("firewall-cmd", "--get-zone-of-interface=locker_demo"): (0, "trusted\n"),
        ("firewall-cmd", "--get-zone-of-interface=locker_other"): (0, "public\n"),
        ("firewall-cmd", "--get-zone-of-interface=locker_lone"): (2, "no zone\n"),
    })
    lone = Bridge("lone", "locker_lone", IPv4Network("10.1.3.0/24"))
    found = blockers.firewalld_blockers([DEMO, OTHER, lone], runs)
    assert [b.what for b in found] == [
        "firewalld rejects forwarded traffic of locker_other (its zone public, not trusted)",
        "firewalld rejects forwarded traffic of locker_lone (in no zone)"]
    assert found[0].fix == ("firewall-cmd --zone=trusted --change-interface=locker_other && "
                            "firewall-cmd --permanent --zone=trusted "
                            "--change-interface=locker_other")
    assert "--add-interface=locker_lone" in found[1].fix


def test_firewalld_that_does_not_answer_is_a_blocker_saying_so() -> None:
    [found] = blockers.firewalld_blockers([DEMO], Runs({}))
    assert "did not answer" in found.what and "--change-interface=locker_demo" in found.fix


# ------------------------------------------------------------------ ufw


UFW_USER_RULES = """\
*filter
### tuple ### route:allow any any 0.0.0.0/0 any 0.0.0.0/0 in_locker_demo
-A ufw-user-forward -i locker_demo -j ACCEPT
COMMIT
"""


def test_ufw_inactive_or_accepting_blocks_nothing(tmp_path) -> None:
    assert not blockers.ufw_active(tmp_path)
    write(tmp_path, "etc/ufw/ufw.conf", "# comment\nENABLED=no\n")
    assert not blockers.ufw_active(tmp_path)
    write(tmp_path, "etc/default/ufw", 'DEFAULT_FORWARD_POLICY="ACCEPT"\n')
    assert blockers.ufw_blockers([DEMO], tmp_path) == []


def test_active_ufw_needs_both_route_rules(tmp_path) -> None:
    write(tmp_path, "etc/ufw/ufw.conf", "ENABLED=yes\n")
    write(tmp_path, "etc/default/ufw", 'DEFAULT_FORWARD_POLICY="DROP"\n')
    write(tmp_path, "etc/ufw/user.rules", UFW_USER_RULES)
    assert blockers.ufw_active(tmp_path)
    found = blockers.ufw_blockers([DEMO, OTHER], tmp_path)
    assert [b.fix for b in found] == [
        "ufw route allow out on locker_demo",
        "ufw route allow in on locker_other && ufw route allow out on locker_other"]
    assert "forward policy DROP" in found[0].what


def test_host_firewalls_on_a_host_without_either(tmp_path) -> None:
    assert blockers.host_firewalls([DEMO], tmp_path, Runs({})) == blockers.HostFirewalls()


def test_host_firewalls_say_which_chains_they_manage(tmp_path) -> None:
    write(tmp_path, "run/firewalld.pid", f"{os.getpid()}\n")
    write(tmp_path, f"proc/{os.getpid()}/cmdline", b"/usr/sbin/firewalld\0")
    write(tmp_path, "etc/ufw/ufw.conf", "ENABLED=yes\n")
    runs = Runs({("firewall-cmd", "--get-zone-of-interface=locker_demo"): (0, "trusted\n")})
    host = blockers.host_firewalls([DEMO], tmp_path, runs)
    assert [b.what.split()[0] for b in host.blockers] == ["ufw"]
    assert host.manages("inet", "firewalld") and host.manages("ip", "filter")
    assert not host.manages("inet", "filter") and host.manages_legacy_forward
    assert blockers.host_firewalls([], tmp_path, runs) == blockers.HostFirewalls()
