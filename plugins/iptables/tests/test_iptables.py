"""What the conformance suite does not cover: the xtables lock, concurrent
writers, comment checks, the lazy import and the availability report."""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Network

import pytest

from helpers import foreign_dump, locker_dump, save
from locker.errors import BackendError
from locker.model import Bridge, Forward, Link, Ruleset
from locker.plugins import new_manager

needs_legacy = pytest.mark.skipif(shutil.which("iptables-legacy") is None,
                                  reason="needs iptables-legacy (package iptables)")


def forwards(n: int, base: int = 10000) -> list[Forward]:
    return [Forward("alpha", "web", base + i, IPv4Address("10.1.1.2"), 80 + i)
            for i in range(n)]


@pytest.fixture
def backend(netns):
    from locker_iptables import IptablesBackend
    return IptablesBackend(lock_timeout=10)


@pytest.fixture
def hook(backend):
    return new_manager(backend).hook


# ----------------------------------------------------------------- import


def test_importing_the_plugin_does_not_import_iptc() -> None:
    code = ("import sys, importlib.metadata as md\n"
            "[ep] = [e for e in md.entry_points(group='locker.firewall') if e.name == 'iptables']\n"
            "backend = ep.load()()\n"
            "print('iptc' in sys.modules, type(backend).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "IptablesBackend"]


# --------------------------------------------------------------- comments


@pytest.mark.parametrize("comment", ["x" * 256, "locker:a b", "locker:ä", 'locker:"a"', ""])
def test_bad_comments_are_refused(comment: str) -> None:
    from locker_iptables.rules import check_comment
    with pytest.raises(BackendError):
        check_comment(comment)


def test_longest_comment_is_accepted() -> None:
    from locker_iptables.rules import check_comment
    check_comment("locker:" + "x" * 248)


@pytest.mark.privileged
@needs_legacy
@pytest.mark.parametrize("comment", ["locker:alpha:" + "x" * 250, "locker:alpha:a b"])
def test_bad_comment_is_refused_before_commit(backend, hook, netns, comment) -> None:
    from locker_iptables.kernel import Op
    from locker_iptables.rules import Spec
    hook.add_forward(forwards=forwards(1))
    before = save(netns)
    good = Spec("nat", "LOCKER_PREROUTING", "ACCEPT", "locker:alpha:web:dnat", dport=1,
                protocol="tcp")
    bad = Spec("filter", "LOCKER_FORWARD", "ACCEPT", comment)
    with pytest.raises(BackendError, match="comment"):
        backend.kernel.transact(lambda views: {
            "nat": [Op("append", "LOCKER_PREROUTING", good)],
            "filter": [Op("append", "LOCKER_FORWARD", bad)]})
    assert save(netns) == before


# ------------------------------------------------------- lock and writers


@pytest.mark.privileged
@needs_legacy
def test_waits_for_the_xtables_lock_and_gives_up_clearly(netns) -> None:
    from locker_iptables import IptablesBackend
    from locker_iptables.lock import lock_path
    hook = new_manager(IptablesBackend(lock_timeout=0.3)).hook
    fd = os.open(lock_path(), os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(BackendError, match="xtables lock"):
            hook.add_forward(forwards=forwards(1))
        assert 0.3 <= time.monotonic() - started < 5
    finally:
        os.close(fd)
    assert locker_dump(netns) == ""
    hook.add_forward(forwards=forwards(1))
    assert hook.list_rules(project=None).forwards == frozenset(forwards(1))


WRITER_COUNT = 150


def _run_against_writer(hook, writer: subprocess.Popen, deadline: float) -> int:
    """Apply Locker batches until the writer is done; return how many."""
    batches, wanted = 0, forwards(20)
    while writer.poll() is None:
        assert time.monotonic() < deadline, "the other writer did not finish in time"
        hook.add_forward(forwards=wanted)
        hook.add_link(links=[Link("alpha", "web", IPv4Address("10.1.1.2"), "db",
                                  IPv4Address("10.1.1.3"))])
        hook.remove_forward(forwards=wanted[::2])
        batches += 3
    hook.add_forward(forwards=wanted)
    assert hook.list_rules(project=None).forwards == frozenset(wanted)
    return batches


def _assert_all_survive(netns, prefix: str, exactly_once: bool = True) -> None:
    """Every rule of the other writer is there, in its order. A writer that
    ignores the lock may itself add a rule twice (a commit it retries had
    gone through): with ``exactly_once`` False that is its business."""
    theirs = [line for _, line in save(netns) if f"--comment {prefix}" in line]
    numbers = [int(line.split(f"--comment {prefix}")[1].split()[0]) for line in theirs]
    if exactly_once:
        assert numbers == list(range(1, WRITER_COUNT + 1))
    else:
        assert sorted(set(numbers)) == list(range(1, WRITER_COUNT + 1))
        assert numbers == sorted(numbers)


@pytest.mark.privileged
@needs_legacy
def test_locked_writer_in_parallel(hook, netns) -> None:
    """``iptables-legacy -w`` appends to FORWARD while Locker applies batches:
    both take the xtables lock in turn, nothing fails, nothing is lost."""
    loop = (f"i=1; while [ $i -le {WRITER_COUNT} ]; do "
            "iptables-legacy -w 5 -A FORWARD -s 198.51.100.7/32 "
            "-m comment --comment other$i -j ACCEPT || exit 1; i=$((i+1)); done")
    writer = subprocess.Popen(["ip", "netns", "exec", netns.name, "sh", "-c", loop],
                              stderr=subprocess.PIPE, text=True)
    try:
        batches = _run_against_writer(hook, writer, time.monotonic() + 120)
    finally:
        if writer.poll() is None:
            writer.kill()
        _, err = writer.communicate()
    assert writer.returncode == 0, err
    assert batches > 0
    _assert_all_survive(netns, "other")


LOCKLESS_WRITER = """
import sys, time, iptc
count, errors = int(sys.argv[1]), 0
for i in range(1, count + 1):
    while True:
        table = iptc.Table("filter")
        table.autocommit = False
        table.refresh()
        rule = iptc.Rule()
        rule.src = "198.51.100.8"
        rule.create_match("comment").comment = "lockless%d" % i
        rule.target = rule.create_target("ACCEPT")
        iptc.Chain(table, "FORWARD").append_rule(rule)
        try:
            table.commit()
            break
        except iptc.IPTCError:
            errors += 1
            if errors > 10000:
                sys.exit("too many failed commits")
print(errors)
"""


@pytest.mark.privileged
@needs_legacy
def test_lockless_writer_in_parallel(backend, hook, netns) -> None:
    """A writer that ignores the xtables lock makes Locker's commits fail
    with EAGAIN now and then: Locker retries from a fresh read, so its
    batches succeed and the writer's rules all survive."""
    from locker_iptables.kernel import Kernel
    backend.kernel = Kernel(lock_timeout=10, retries=50, backoff=0.001)
    writer = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, sys.executable, "-c", LOCKLESS_WRITER,
         str(WRITER_COUNT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        batches = _run_against_writer(hook, writer, time.monotonic() + 120)
    finally:
        if writer.poll() is None:
            writer.kill()
        out, err = writer.communicate()
    assert writer.returncode == 0, err
    assert batches > 0
    _assert_all_survive(netns, "lockless", exactly_once=False)
    print(f"{batches} Locker batches, {backend.kernel.retried} retried after EAGAIN, "
          f"{out.strip()} failed commits of the lockless writer")


# ------------------------------------------------------------ the tables


@pytest.mark.privileged
@needs_legacy
def test_jumps_go_first_and_keep_the_order_of_others(hook, netns) -> None:
    for n in (1, 2, 3):
        netns.run(["iptables-legacy", "-w", "-A", "FORWARD", "-s", f"192.0.2.{n}", "-j", "DROP"])
    before = [line for line in foreign_dump(netns).splitlines() if line.startswith("filter ")]
    hook.add_link(links=[Link("alpha", "web", IPv4Address("10.1.1.2"), "db",
                              IPv4Address("10.1.1.3"))])
    hook.add_link(links=[Link("alpha", "web", IPv4Address("10.1.1.2"), "db",
                              IPv4Address("10.1.1.3"))])
    forward = netns.run(["iptables-legacy", "-S", "FORWARD"]).stdout.splitlines()
    assert forward[1] == "-A FORWARD -m comment --comment LOCKER -j LOCKER_FORWARD"
    assert [line.split()[3] for line in forward[2:]] == [f"192.0.2.{n}/32" for n in (1, 2, 3)]
    assert [line for line in foreign_dump(netns).splitlines()
            if line.startswith("filter ")] == before


@pytest.mark.privileged
@needs_legacy
def test_autocommit_is_restored(hook, netns) -> None:
    import iptc
    for name in ("filter", "nat"):
        iptc.Table(name).autocommit = True
    hook.add_nat(bridges=[Bridge("alpha", "locker_alpha", IPv4Network("10.1.1.0/24"))])
    hook.cleanup(project="alpha")
    hook.list_rules(project=None)
    assert iptc.Table("filter").autocommit and iptc.Table("nat").autocommit


@pytest.mark.privileged
@needs_legacy
def test_one_commit_per_table(backend, hook, netns) -> None:
    from locker.testing.firewall_suite import BRIDGE1
    hook.add_nat(bridges=[BRIDGE1])
    commits: list[str] = []
    backend.kernel.before_commit = lambda name, table, last: commits.append(name)
    hook.add_forward(forwards=forwards(50))
    assert commits == ["filter", "nat"]
    commits.clear()
    hook.remove_forward(forwards=forwards(50))
    assert commits == ["filter", "nat"]
    commits.clear()
    hook.add_link(links=[Link("alpha", "web", IPv4Address("10.1.1.2"), "db",
                              IPv4Address("10.1.1.3"))])
    assert commits == ["filter"]


# ------------------------------------------------------ forward accepts


TO_WEB = [Forward("alpha", "web", 8080, IPv4Address("10.1.1.2"), 80),
          Forward("alpha", "web", 8443, IPv4Address("10.1.1.2"), 80, "tcp",
                  IPv4Address("192.0.2.10"))]
ACCEPT_8080 = ("-A LOCKER_FWD_alpha -d 10.1.1.2/32 -p tcp -m tcp --dport 80 -m conntrack "
               "--ctstate DNAT --ctorigdstport 8080 -m comment --comment "
               '"locker:alpha:web:forward" -j ACCEPT')
ACCEPT_8443 = ("-A LOCKER_FWD_alpha -d 10.1.1.2/32 -p tcp -m tcp --dport 80 -m conntrack "
               "--ctstate DNAT --ctorigdst 192.0.2.10 --ctorigdstport 8443 -m comment "
               "--comment \"locker:alpha:web:forward\" -j ACCEPT")
FORMER_ACCEPT = ("-d 10.1.1.2/32 -p tcp -m tcp --dport 80 -m comment --comment "
                 "locker:alpha:web:forward -j ACCEPT")


def _accepts(netns) -> list[str]:
    return [line for _, line in save(netns)
            if line.startswith(("-A LOCKER_FORWARD", "-A LOCKER_FWD_")) and ":forward" in line]


@pytest.mark.privileged
@needs_legacy
def test_each_forward_accepts_only_what_its_dnat_translated(hook, netns) -> None:
    """As the nftables backend's ``ct status dnat ct original proto-dst``:
    one accept per forward, even to the same container port, removed with
    its forward alone."""
    hook.add_forward(forwards=TO_WEB)
    assert _accepts(netns) == [ACCEPT_8080, ACCEPT_8443]
    assert hook.list_rules(project=None).forwards == frozenset(TO_WEB)
    hook.remove_forward(forwards=TO_WEB[:1])
    assert _accepts(netns) == [ACCEPT_8443]
    assert hook.list_rules(project=None).forwards == frozenset(TO_WEB[1:])
    hook.remove_forward(forwards=TO_WEB[1:])
    assert [line for _, line in save(netns) if "locker:alpha:" in line] == []


@pytest.mark.privileged
@needs_legacy
def test_a_forward_without_its_dnat_accept_is_not_reported(hook, netns) -> None:
    hook.add_forward(forwards=TO_WEB)
    netns.run(["iptables-legacy", "-w", "-D", "LOCKER_FWD_alpha", "1"])
    assert hook.list_rules(project=None).forwards == frozenset(TO_WEB[1:])
    hook.add_forward(forwards=TO_WEB)
    assert _accepts(netns) == [ACCEPT_8443, ACCEPT_8080]


@pytest.mark.privileged
@needs_legacy
@pytest.mark.parametrize("hook_name", ["add_forward", "remove_forward"])
def test_the_former_shared_accept_is_dropped(hook, netns, hook_name) -> None:
    """Earlier versions accepted any forwarded traffic to the container's
    port; such a rule left on an upgraded host goes when its forwards are
    added again (``locker ports``) or removed."""
    hook.add_forward(forwards=TO_WEB)
    netns.run(["iptables-legacy", "-w", "-A", "LOCKER_FORWARD", *FORMER_ACCEPT.split()])
    assert len(_accepts(netns)) == 3
    getattr(hook, hook_name)(forwards=TO_WEB)
    expected = [ACCEPT_8080, ACCEPT_8443] if hook_name == "add_forward" else []
    assert _accepts(netns) == expected


# ----------------------------------------------------------- availability


@pytest.mark.privileged
@needs_legacy
def test_availability_reports_the_variant(hook, netns) -> None:
    version = subprocess.run(["iptables", "-V"], capture_output=True, text=True).stdout
    netns.run(["iptables-legacy", "-w", "-A", "FORWARD", "-j", "ACCEPT"])
    availability = hook.firewall_availability()
    assert availability.usable, availability.reason
    assert availability.details["legacy_rules"] == "1"
    if "nf_tables" in version:
        assert availability.details["variant"] == "nf_tables"
        assert availability.auto is False
        assert "nf_tables" in availability.reason
        assert "legacy" in availability.warning and "nftables" in availability.warning
    else:
        assert availability.details["variant"] == "legacy"
        assert availability.auto is True and availability.warning is None


@pytest.mark.privileged
@needs_legacy
def test_duplicate_jumps_are_reduced_to_one(hook, netns) -> None:
    from helpers import jumps
    hook.add_forward(forwards=forwards(1))
    netns.run(["iptables-legacy", "-w", "-A", "FORWARD", "-m", "comment", "--comment",
               "LOCKER", "-j", "LOCKER_FORWARD"])
    assert jumps(netns)["LOCKER_FORWARD"] == 2
    assert not hook.list_rules(project=None).jumps
    hook.add_forward(forwards=forwards(1))
    assert jumps(netns) == {"LOCKER_FORWARD": 1, "LOCKER_PREROUTING": 1,
                            "LOCKER_PREROUTING from OUTPUT": 1, "LOCKER_POSTROUTING": 1,
                            "LOCKER_USER": 1, "LOCKER_ISOLATION": 1, "LOCKER_INPUT": 1}
    assert hook.list_rules(project=None).jumps


@pytest.mark.privileged
@needs_legacy
def test_the_former_shared_accept_is_unrecognised(hook, netns) -> None:
    """Until ``locker ports`` replaces it, the former accept is a tagged
    rule Locker no longer writes: the repair removes it."""
    hook.add_forward(forwards=TO_WEB)
    netns.run(["iptables-legacy", "-w", "-A", "LOCKER_FORWARD", *FORMER_ACCEPT.split()])
    [former] = hook.list_rules(project=None).unrecognised
    assert former.location == "iptables-legacy filter LOCKER_FORWARD"
    assert "--dport 80" in former.text and "conntrack" not in former.text
    hook.remove_unrecognised(project="alpha")
    assert _accepts(netns) == [ACCEPT_8080, ACCEPT_8443]


# ------------------------------------------------------ half-applied calls

HALF_APPLIED = """
from locker.plugins import new_manager
from locker.testing.firewall_suite import FORWARD
from locker_iptables import IptablesBackend
getattr(new_manager(IptablesBackend()).hook, {hook!r})(forwards=[FORWARD])
"""


@pytest.mark.privileged
@needs_legacy
@pytest.mark.parametrize("hook_name", ["add_forward", "remove_forward"])
def test_a_call_killed_between_its_commits_is_repaired_by_the_next(hook, netns,
                                                                   hook_name) -> None:
    """The filter table is committed, then the process dies before the nat
    commit (``LOCKER_FAULT=rules-half-applied``): the forward is partial
    until the same call runs again."""
    from locker.faults import ENVIRONMENT_VARIABLE
    from locker.model import Ruleset
    from locker.testing.firewall_suite import FORWARD
    if hook_name == "remove_forward":
        hook.add_forward(forwards=[FORWARD])
    env = {**os.environ, ENVIRONMENT_VARIABLE: "rules-half-applied"}
    died = netns.run([sys.executable, "-c", HALF_APPLIED.format(hook=hook_name)],
                     check=False, env=env)
    assert died.returncode == -9, died.stderr
    found = hook.list_rules(project=None)
    assert found.partial == {FORWARD} and found.forwards == frozenset(), found
    filter_has_accept = any("locker:alpha:web:forward" in line for t, line in save(netns)
                            if t == "filter")
    assert filter_has_accept == (hook_name == "add_forward")
    getattr(hook, hook_name)(forwards=[FORWARD])
    comments = [line for _, line in save(netns) if "locker:alpha:web:" in line]
    if hook_name == "add_forward":
        assert hook.list_rules(project=None) == Ruleset(forwards=frozenset({FORWARD}),
                                                        jumps=True)
        assert len(comments) == 2
    else:
        assert hook.list_rules(project=None) == Ruleset(jumps=True)
        assert comments == []


# --------------------------------------------------------------- blockers


@pytest.mark.privileged
@needs_legacy
def test_own_legacy_forward_policy_drop_is_no_blocker(hook, netns) -> None:
    """Locker's jump is first in the legacy FORWARD chain, so its accepts
    decide before the chain's own rules and policy."""
    from locker.testing.firewall_suite import BRIDGE1
    hook.add_nat(bridges=[BRIDGE1])
    netns.run(["iptables-legacy", "-w", "-P", "FORWARD", "DROP"])
    netns.run(["iptables-legacy", "-w", "-A", "FORWARD", "-j", "DROP"])
    assert hook.find_blockers(bridges=[BRIDGE1]) == []


@pytest.mark.privileged
@pytest.mark.skipif(shutil.which("iptables-nft") is None, reason="needs iptables-nft")
def test_iptables_nft_forward_policy_drop_is_a_blocker(hook, netns) -> None:
    from locker.testing.firewall_suite import BRIDGE1
    netns.run(["iptables-nft", "-w", "-P", "FORWARD", "DROP"])
    [blocker] = hook.find_blockers(bridges=[BRIDGE1])
    assert "ip filter FORWARD" in blocker.what
    assert blocker.fix.startswith("iptables-nft -I FORWARD")
    netns.run(["sh", "-c", blocker.fix])
    assert hook.find_blockers(bridges=[BRIDGE1]) == []


@pytest.mark.privileged
@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")
def test_nf_tables_side_reads_the_same_through_the_cli_and_the_binding(netns) -> None:
    from locker_iptables import nfside
    netns.run(["nft", "-f", "-"], input=(
        "table inet hostfw {\n chain forward {\n"
        "  type filter hook forward priority 0; policy drop;\n"
        '  iifname "locker_alpha" accept\n }\n'
        " chain input { type filter hook input priority 0; policy drop; }\n}\n"))
    through_cli = nfside.forward_chains(nfside._cli_reader)
    assert through_cli == nfside.forward_chains()
    [(family, table, chain, exprs)] = through_cli
    assert (family, table, chain["name"], chain["policy"]) == ("inet", "hostfw", "forward", "drop")
    assert len(exprs) == 1


@pytest.mark.privileged
@needs_legacy
def test_altered_jump_is_named_and_replaced(hook, netns) -> None:
    """A PREROUTING jump without ``addrtype LOCAL`` would DNAT transit
    traffic too: it is not Locker's jump, and the next add replaces it."""
    hook.add_forward(forwards=forwards(1))
    netns.run(["iptables-legacy", "-w", "-t", "nat", "-R", "PREROUTING", "1", "-m", "comment",
               "--comment", "LOCKER", "-j", "LOCKER_PREROUTING"])
    found = hook.list_rules(project=None)
    assert not found.jumps and found.forwards == set(forwards(1))
    assert set(found.entry_missing) == {"jump from PREROUTING to LOCKER_PREROUTING",
                                        "altered jump rule in chain PREROUTING"}
    hook.add_forward(forwards=forwards(1))
    assert hook.list_rules(project=None).jumps
    assert [line for t, line in save(netns) if t == "nat" and line.startswith("-A PREROUTING")] \
        == ["-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment LOCKER "
            "-j LOCKER_PREROUTING"]


# ----------------------------------------------------------- reading back


def _keyed_specs() -> list[tuple[object, object]]:
    from locker.testing import firewall_suite as suite
    from locker_iptables import rules
    pairs = []
    for forward in suite.FORWARDS1:
        pairs += [(rules.dnat_spec(forward), ("dnat", forward)),
                  (rules.accept_spec(forward), ("forward", forward))]
    for link in suite.LINKS1:
        there, back = rules.link_specs(link)
        pairs += [(there, ("link", link)), (back, ("link-back", link))]
    from dataclasses import replace

    from locker.pieces import nat_keys
    isolated = replace(suite.BRIDGE1, isolated=True)
    keys = sorted(nat_keys(isolated), key=str)
    by_purpose = {key[0]: key for key in keys}
    pairs += [(spec, by_purpose[spec.tag.purpose]) for spec in rules.nat_specs(isolated)]
    assert len(pairs) == 2 * (len(suite.FORWARDS1) + len(suite.LINKS1)) + len(keys)
    return pairs


@pytest.mark.parametrize("spec, key", _keyed_specs(), ids=lambda v: getattr(v, "comment", ""))
def test_every_spec_parses_back_to_its_key(spec, key) -> None:
    from locker_iptables.rules import parse
    assert parse(spec) == key


def test_a_spec_that_is_not_what_locker_writes_does_not_parse() -> None:
    from dataclasses import replace

    from locker_iptables.rules import parse
    spec = _keyed_specs()[0][0]
    assert parse(replace(spec, chain="LOCKER_FORWARD", table="filter")) is None
    assert parse(replace(spec, comment="locker:alpha:web:forward")) is None
    assert parse(replace(spec, target="ACCEPT")) is None
    assert parse(replace(spec, in_iface="eth0")) is None
    assert parse(replace(spec, comment="locker:beta:web:dnat")) is None   # in alpha's chain
    assert parse(replace(spec, comment="locker:beta:web:dnat",
                         chain="LOCKER_PRE_beta")) is not None                # beta's forward
    assert parse(None) is None


def test_a_range_rule_parses_back_to_its_range_and_only_when_consistent() -> None:
    from dataclasses import replace

    from locker_iptables.rules import accept_spec, dnat_spec, parse
    wide = Forward("alpha", "web", 8000, IPv4Address("10.1.1.2"), 9000, count=11)
    assert parse(dnat_spec(wide)) == ("dnat", wide)
    assert parse(accept_spec(wide)) == ("forward", wide)
    assert dnat_spec(wide).to_destination == "10.1.1.2:9000-9010/8000"
    # a DNAT whose map is not shifted onto the range, or whose ports disagree
    assert parse(replace(dnat_spec(wide), to_destination="10.1.1.2:9000-9010")) is None
    assert parse(replace(dnat_spec(wide), to_destination="10.1.1.2:9000-9009/8000")) is None
    assert parse(replace(accept_spec(wide), dport_last=9009)) is None
    assert parse(replace(dnat_spec(wide), dport_last=8000)) is None


@pytest.mark.privileged
@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")
def test_host_firewalls_are_reported_and_their_chains_left_to_them(hook, netns,
                                                                  monkeypatch) -> None:
    from locker import blockers
    from locker.model import Blocker
    from locker.testing.firewall_suite import BRIDGE1
    host = blockers.HostFirewalls((Blocker("ufw drops ...", "ufw route allow ..."),),
                                  frozenset({("ip", "filter")}), manages_legacy_forward=True)
    monkeypatch.setattr(blockers, "host_firewalls", lambda bridges: host)
    netns.run(["nft", "-f", "-"], input="table ip filter {\n chain FORWARD {\n"
              "  type filter hook forward priority 0; policy drop;\n }\n}\n")
    assert hook.find_blockers(bridges=[BRIDGE1]) == list(host.blockers)


# -------------------------------------------- each project's own chains


#: The first two rules of LOCKER_FORWARD.
HEAD = ["-m comment --comment LOCKER -j LOCKER_USER",
        "-m comment --comment LOCKER -j LOCKER_ISOLATION"]


def _chains(netns) -> dict[tuple[str, str], list[str]]:
    """(table, chain) -> the rules of that chain in ``iptables-legacy-save``
    (without ``-A CHAIN``), every chain listed, also empty ones."""
    found: dict[tuple[str, str], list[str]] = {}
    for table, line in save(netns):
        if line.startswith(":"):
            found[table, line[1:].split()[0]] = []
        elif line.startswith("-A "):
            chain, _, rest = line[3:].partition(" ")
            found.setdefault((table, chain), []).append(rest.replace("\"", ""))
    return found


def _comments(rules: list[str]) -> list[str]:
    return [shlex.split(rule)[shlex.split(rule).index("--comment") + 1] for rule in rules
            if "--comment" in rule]


@pytest.mark.privileged
@needs_legacy
def test_each_project_has_chains_of_its_own_reached_by_one_dispatch_rule(hook, netns) -> None:
    from locker.testing import firewall_suite as suite
    hook.add_nat(bridges=[suite.BRIDGE1, suite.BRIDGE2])
    hook.add_forward(forwards=suite.FORWARDS1 + suite.FORWARDS2)
    hook.add_link(links=suite.LINKS1 + suite.LINKS2)
    chains = _chains(netns)
    assert chains["filter", "LOCKER_FORWARD"] == HEAD + [
        f"-m comment --comment locker:{p}:dispatch -j LOCKER_FWD_{p}" for p in ("alpha", "beta")]
    assert chains["nat", "LOCKER_PREROUTING"] == [
        f"-m comment --comment locker:{p}:dispatch -j LOCKER_PRE_{p}" for p in ("alpha", "beta")]
    for project, forwards, links in (("alpha", suite.FORWARDS1, suite.LINKS1),
                                     ("beta", suite.FORWARDS2, suite.LINKS2)):
        own_filter = _comments(chains["filter", f"LOCKER_FWD_{project}"])
        assert sorted(own_filter) == sorted(
            [f"locker:{project}:{f.container}:forward" for f in forwards]
            + [f"locker:{project}:{k.container}:{d}:{k.peer}" for k in links
               for d in ("link", "link-back")]
            + [f"locker:{project}:outbound", f"locker:{project}:replies"])
        assert sorted(_comments(chains["nat", f"LOCKER_PRE_{project}"])) == sorted(
            f"locker:{project}:{f.container}:dnat" for f in forwards)
    assert _comments(chains["nat", "LOCKER_POSTROUTING"]) == [
        f"locker:{p}:{purpose}" for p in ("alpha", "beta")
        for purpose in ("masquerade", "hairpin", "localhost")]
    assert _comments(chains["filter", "LOCKER_ISOLATION"]) == [
        "locker:alpha:deny", "locker:beta:deny"]
    assert _comments(chains["filter", "LOCKER_INPUT"]) == [
        "locker:alpha:guard", "locker:beta:guard"]


def test_long_project_names_get_short_deterministic_chain_names() -> None:
    from locker.names import NAME_MAX
    from locker_iptables.rules import CHAIN_MAX, fwd_chain, pre_chain
    assert fwd_chain("web") == "LOCKER_FWD_web" and pre_chain("web") == "LOCKER_PRE_web"
    fits = "a" * (CHAIN_MAX - len("LOCKER_FWD_"))
    assert fwd_chain(fits) == "LOCKER_FWD_" + fits
    longest = "averylongprojectname-" + "x" * (NAME_MAX - 21)
    twin = longest[:-1] + "y"
    for name in (fits + "b", longest, twin):
        short = fwd_chain(name)
        assert len(short) == CHAIN_MAX and short.startswith("LOCKER_FWD_" + name[:8] + "_")
        assert short == fwd_chain(name) and pre_chain(name) == "LOCKER_PRE_" + short[11:]
    assert fwd_chain(longest) != fwd_chain(twin)


@pytest.mark.privileged
@needs_legacy
def test_a_long_project_name_works_end_to_end(hook, netns) -> None:
    from locker.names import NAME_MAX, bridge_name
    from locker_iptables.rules import fwd_chain, pre_chain
    project = "p" + "0123456789" * 3 + "z"
    assert len(project) == NAME_MAX
    bridge = Bridge(project, bridge_name(project), IPv4Network("10.1.7.0/24"))
    forward = Forward(project, "web", 8080, IPv4Address("10.1.7.2"), 80)
    hook.add_nat(bridges=[bridge])
    hook.add_forward(forwards=[forward])
    chains = _chains(netns)
    assert len(chains["filter", fwd_chain(project)]) == 3
    assert len(chains["nat", pre_chain(project)]) == 1
    assert chains["filter", "LOCKER_FORWARD"] == HEAD + [
        f"-m comment --comment locker:{project}:dispatch -j {fwd_chain(project)}"]
    found = hook.list_rules(project=project)
    assert (found.nat, found.forwards, found.jumps) == ({bridge}, {forward}, True)
    hook.cleanup(project=project)
    assert not [key for key in _chains(netns) if key[1] in (fwd_chain(project),
                                                            pre_chain(project))]


@pytest.mark.privileged
@needs_legacy
def test_cleanup_deletes_the_projects_chains_and_dispatch_rules_only(hook, netns) -> None:
    from locker.testing import firewall_suite as suite
    hook.add_nat(bridges=[suite.BRIDGE1, suite.BRIDGE2])
    hook.add_forward(forwards=suite.FORWARDS1 + suite.FORWARDS2)
    beta = {key: rules for key, rules in _chains(netns).items() if "beta" in key[1]}
    hook.cleanup(project="alpha")
    chains = _chains(netns)
    assert not [key for key in chains if "alpha" in key[1]]
    assert not [rule for rules in chains.values() for rule in rules if "locker:alpha:" in rule]
    assert {key: rules for key, rules in chains.items() if "beta" in key[1]} == beta
    assert chains["filter", "LOCKER_FORWARD"] == HEAD + [
        "-m comment --comment locker:beta:dispatch -j LOCKER_FWD_beta"]


@pytest.mark.privileged
@needs_legacy
def test_a_projects_read_decodes_none_of_another_projects_rules(hook, netns,
                                                                 monkeypatch) -> None:
    """Issue 9.2: ``list_rules(P)`` reads the shared chains and P's own;
    another project's rules (also its masquerade in the shared
    LOCKER_POSTROUTING) are read for their comment only."""
    from locker.names import Tag
    from locker.testing import firewall_suite as suite
    from locker_iptables import entries
    hook.add_nat(bridges=[suite.BRIDGE1, suite.BRIDGE2])
    hook.add_forward(forwards=suite.FORWARDS1 + suite.FORWARDS2)
    hook.add_link(links=suite.LINKS1 + suite.LINKS2)
    decoded: list[str] = []
    for name in ("_decode", "read_rule"):
        original = getattr(entries, name)

        def spy(*args, _original=original):
            found = _original(*args)
            if found is not None and found[0] is not None:
                decoded.append(found[0])
            return found

        monkeypatch.setattr(entries, name, spy)
    assert hook.list_rules(project="alpha") == hook.list_rules(project=None).of_project("alpha")
    decoded.clear()
    hook.list_rules(project="alpha")
    projects = {Tag.parse(c).project for c in decoded if Tag.parse(c)}
    assert projects == {"alpha"}, decoded


# ------------------------------------------------------------ old layout

#: What the previous version wrote for project alpha (every rule in the
#: shared chains, no policy rules nor their entry chains), as
#: iptables-legacy-save shows it.
OLD_LAYOUT = """\
*nat
:LOCKER_PREROUTING - [0:0]
:LOCKER_POSTROUTING - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment LOCKER -j LOCKER_PREROUTING
-A POSTROUTING -m comment --comment LOCKER -j LOCKER_POSTROUTING
-A LOCKER_PREROUTING -p tcp -m tcp --dport 8080 -m comment --comment \"locker:alpha:web:dnat\" -j DNAT --to-destination 10.1.1.2:80
-A LOCKER_PREROUTING -d 192.0.2.10/32 -p udp -m udp --dport 5353 -m comment --comment locker:alpha:dns:dnat -j DNAT --to-destination 10.1.1.3:53
-A LOCKER_POSTROUTING -s 10.1.1.0/24 ! -d 10.1.1.0/24 -m comment --comment locker:alpha:masquerade -j MASQUERADE
COMMIT
*filter
:LOCKER_FORWARD - [0:0]
-A FORWARD -m comment --comment LOCKER -j LOCKER_FORWARD
-A LOCKER_FORWARD -d 10.1.1.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -m comment --comment locker:alpha:web:forward -j ACCEPT
-A LOCKER_FORWARD -d 10.1.1.3/32 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT --ctorigdst 192.0.2.10 --ctorigdstport 5353 -m comment --comment locker:alpha:dns:forward -j ACCEPT
-A LOCKER_FORWARD -s 10.1.1.2/32 -d 10.1.1.3/32 -m comment --comment locker:alpha:web:link:dns -j ACCEPT
-A LOCKER_FORWARD -s 10.1.1.3/32 -d 10.1.1.2/32 -m comment --comment locker:alpha:web:link-back:dns -j ACCEPT
-A LOCKER_FORWARD -i locker_alpha ! -o locker_alpha -m comment --comment locker:alpha:outbound -j ACCEPT
-A LOCKER_FORWARD -o locker_alpha -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment locker:alpha:replies -j ACCEPT
COMMIT
"""
OLD_FORWARDS = frozenset({
    Forward("alpha", "web", 8080, IPv4Address("10.1.1.2"), 80),
    Forward("alpha", "dns", 5353, IPv4Address("10.1.1.3"), 53, "udp", IPv4Address("192.0.2.10"))})
OLD_LINKS = frozenset({Link("alpha", "web", IPv4Address("10.1.1.2"), "dns",
                            IPv4Address("10.1.1.3"))})
OLD_BRIDGE = Bridge("alpha", "locker_alpha", IPv4Network("10.1.1.0/24"))


def _old_layout(netns) -> None:
    netns.run(["iptables-legacy-restore", "-w", "--noflush"], input=OLD_LAYOUT)


@pytest.mark.privileged
@needs_legacy
def test_the_old_layout_reads_back_and_is_named(hook, netns) -> None:
    _old_layout(netns)
    found = hook.list_rules(project="alpha")
    assert (found.forwards, found.links) == (OLD_FORWARDS, OLD_LINKS)
    assert found.nat == frozenset() and found.partial == {OLD_BRIDGE}   # no policy rules
    assert found.unrecognised == () and not found.jumps
    assert "8 rule(s) of project alpha in the old layout (shared chains), moved into its " \
           "own chains by the next command" in found.entry_missing
    assert "chain LOCKER_FWD_alpha of project alpha in table filter" in found.entry_missing
    beta = hook.list_rules(project="beta")    # the entry points of the previous layout
    assert {"chain LOCKER_USER in table filter", "jump from OUTPUT to LOCKER_PREROUTING"} \
        <= set(beta.entry_missing)
    assert not [p for p in beta.entry_missing if "alpha" in p]


@pytest.mark.privileged
@needs_legacy
@pytest.mark.parametrize("adding", ["add_nat", "add_forward", "add_link"])
def test_the_next_adding_hook_moves_the_old_layout(hook, netns, adding) -> None:
    """Whichever adding hook comes first for the project (``start`` calls
    add_nat, ``ports`` add_forward, ``links`` add_link) moves every rule of
    the project, each table in one commit."""
    _old_layout(netns)
    wanted = {"add_nat": ("bridges", [OLD_BRIDGE]), "add_forward": ("forwards", []),
              "add_link": ("links", [])}[adding]
    argument, values = wanted
    if not values:
        values = sorted(OLD_FORWARDS if adding == "add_forward" else OLD_LINKS, key=str)[:1]
    getattr(hook, adding)(**{argument: values})
    chains = _chains(netns)
    assert chains["filter", "LOCKER_FORWARD"] == HEAD + [
        "-m comment --comment locker:alpha:dispatch -j LOCKER_FWD_alpha"]
    assert chains["nat", "LOCKER_PREROUTING"] == [
        "-m comment --comment locker:alpha:dispatch -j LOCKER_PRE_alpha"]
    assert len(chains["filter", "LOCKER_FWD_alpha"]) == 6
    assert len(chains["nat", "LOCKER_PRE_alpha"]) == 2
    complete = adding == "add_nat"    # the others leave the policy rules to add_nat
    assert hook.list_rules(project=None) == Ruleset(
        nat=frozenset({OLD_BRIDGE} if complete else ()), forwards=OLD_FORWARDS,
        links=OLD_LINKS, jumps=True, partial=frozenset(() if complete else {OLD_BRIDGE}))


@pytest.mark.privileged
@needs_legacy
def test_another_projects_hook_leaves_the_old_layout_to_its_project(hook, netns) -> None:
    from locker.testing.firewall_suite import BRIDGE2
    _old_layout(netns)
    hook.add_nat(bridges=[BRIDGE2])
    assert len(_chains(netns)["filter", "LOCKER_FORWARD"]) == 2 + 6 + 1   # + beta's dispatch
    found = hook.list_rules(project="alpha")
    assert found.forwards == OLD_FORWARDS and not found.jumps


@pytest.mark.privileged
@needs_legacy
def test_removing_hooks_and_cleanup_remove_old_layout_rules(hook, netns) -> None:
    _old_layout(netns)
    hook.remove_forward(forwards=list(OLD_FORWARDS))
    hook.remove_link(links=list(OLD_LINKS))
    assert not [r for rules in _chains(netns).values() for r in rules
                if ":forward" in r or ":dnat" in r or ":link" in r]
    hook.cleanup(project="alpha")
    assert not [r for rules in _chains(netns).values() for r in rules if "locker:alpha:" in r]


@pytest.mark.privileged
@needs_legacy
def test_the_saved_ruleset_loads_again(hook, netns) -> None:
    """iptables-legacy-save | iptables-legacy-restore: the same rules and
    values come back."""
    from locker.testing import firewall_suite as suite
    hook.add_nat(bridges=[suite.BRIDGE1, suite.BRIDGE2])
    hook.add_forward(forwards=suite.FORWARDS1 + suite.FORWARDS2)
    hook.add_link(links=suite.LINKS1 + suite.LINKS2)
    project = "p" + "0123456789" * 3 + "z"
    hook.add_nat(bridges=[Bridge(project, "lkp012_0000", IPv4Network("10.1.7.0/24"))])
    dump = netns.run(["iptables-legacy-save"]).stdout
    before, listed = save(netns), hook.list_rules(project=None)
    for table in ("filter", "nat"):
        netns.run(["iptables-legacy", "-w", "-t", table, "-F"])
        netns.run(["iptables-legacy", "-w", "-t", table, "-X"])
    assert hook.list_rules(project=None) == Ruleset()
    netns.run(["iptables-legacy-restore", "-w"], input=dump)
    assert save(netns) == before
    assert hook.list_rules(project=None) == listed and listed.jumps


# ------------------------------------------------------- tables it uses


def _tables_here() -> set[str]:
    with open("/proc/thread-self/net/ip_tables_names") as names:
        return set(names.read().split())


@pytest.mark.privileged
@needs_legacy
def test_only_the_filter_and_nat_tables_are_instantiated(hook, netns) -> None:
    """Issue 13.5: python-iptables opens all five tables whenever it builds
    or reads a target (``Rule.tables``); the backend touches only filter
    and nat, and a removing hook or a read in a fresh namespace none."""
    from locker.testing import firewall_suite as suite
    assert _tables_here() == set()
    hook.list_rules(project=None)
    hook.cleanup(project="alpha")
    hook.remove_forward(forwards=suite.FORWARDS1)
    hook.find_blockers(bridges=[suite.BRIDGE1])
    hook.firewall_availability()
    assert _tables_here() == set()
    hook.add_link(links=suite.LINKS1)
    hook.add_nat(bridges=[suite.BRIDGE1])
    hook.add_forward(forwards=suite.FORWARDS1)
    hook.list_rules(project=None)
    hook.list_rules(project="alpha")
    hook.remove_forward(forwards=suite.FORWARDS1[:2])
    hook.remove_unrecognised(project="alpha")
    hook.cleanup(project="alpha")
    assert _tables_here() == {"filter", "nat"}


# ---------------------------------------------------------------- EAGAIN


@pytest.mark.privileged
@needs_legacy
def test_eagain_is_recognised_by_errno_not_by_its_text(backend, hook, netns,
                                                       monkeypatch, tmp_path) -> None:
    """Another writer (its own lock file, so it does not wait for Locker's)
    changes the filter table between Locker's read and its commit: the
    kernel refuses the commit with EAGAIN, whatever python-iptables' text
    for it, and Locker retries from a fresh read."""
    import iptc
    from locker_iptables.lock import lock_path
    monkeypatch.setattr(iptc.Table, "strerror", lambda self: "commit refused")
    env = {**os.environ, "XTABLES_LOCKFILE": str(tmp_path / "other.lock")}
    assert env["XTABLES_LOCKFILE"] != lock_path()
    interfered = []

    def interfere(name, table, last) -> None:
        if not interfered:
            interfered.append(name)
            subprocess.run(["iptables-legacy", "-t", name, "-A", "INPUT" if name == "filter"
                            else "OUTPUT", "-s", "198.51.100.9", "-j", "ACCEPT"],
                           check=True, env=env)

    backend.kernel.before_commit = interfere
    hook.add_forward(forwards=forwards(2))
    assert interfered == ["filter"]
    assert hook.list_rules(project=None).forwards == frozenset(forwards(2))
    assert ("filter", "-A INPUT -s 198.51.100.9/32 -j ACCEPT") in save(netns)


# ---------------------------------------------------------- network policy

ISOLATED = Bridge("alpha", "locker_alpha", IPv4Network("10.1.1.0/24"), isolated=True)
POLICY_RULES = {
    ("filter", "INPUT"): ["-m comment --comment LOCKER -j LOCKER_INPUT"],
    ("nat", "OUTPUT"): ["-m addrtype --dst-type LOCAL -m comment --comment LOCKER "
                        "-j LOCKER_PREROUTING"],
    ("filter", "LOCKER_ISOLATION"): [
        "! -i locker_alpha -o locker_alpha -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
        "-m comment --comment locker:alpha:deny -j DROP"],
    ("filter", "LOCKER_INPUT"): [
        "-d 127.0.0.0/8 -i locker_alpha -m conntrack ! --ctstate RELATED,ESTABLISHED "
        "-m comment --comment locker:alpha:guard -j DROP",
        "! -d 10.1.1.1/32 -i locker_alpha -m conntrack ! --ctstate RELATED,ESTABLISHED "
        "-m comment --comment locker:alpha:isolate -j DROP"],
    ("nat", "LOCKER_POSTROUTING"): [
        "-s 10.1.1.0/24 ! -d 10.1.1.0/24 -m comment --comment locker:alpha:masquerade "
        "-j MASQUERADE",
        "-s 10.1.1.0/24 -d 10.1.1.0/24 -m conntrack --ctstate DNAT -m comment --comment "
        "locker:alpha:hairpin -j MASQUERADE",
        "-s 127.0.0.0/8 -o locker_alpha -m comment --comment locker:alpha:localhost "
        "-j MASQUERADE"],
    ("filter", "LOCKER_USER"): [],
}


@pytest.mark.privileged
@needs_legacy
def test_the_policy_rules_are_where_the_design_puts_them(hook, netns) -> None:
    hook.add_nat(bridges=[ISOLATED])
    chains = _chains(netns)
    assert {key: chains[key] for key in POLICY_RULES} == POLICY_RULES
    assert chains["filter", "LOCKER_FORWARD"][:2] == HEAD
    assert hook.list_rules(project="alpha") == Ruleset(nat=frozenset({ISOLATED}), jumps=True)


@pytest.mark.privileged
@needs_legacy
def test_isolated_is_read_back_from_the_isolate_rule(hook, netns) -> None:
    from dataclasses import replace
    hook.add_nat(bridges=[ISOLATED])
    number = next(i for i, rule in enumerate(_chains(netns)["filter", "LOCKER_INPUT"], 1)
                  if ":isolate" in rule)
    netns.run(["iptables-legacy", "-w", "-D", "LOCKER_INPUT", str(number)])
    assert hook.list_rules(project="alpha").nat == {replace(ISOLATED, isolated=False)}
    hook.add_nat(bridges=[ISOLATED])
    assert hook.list_rules(project="alpha").nat == {ISOLATED}
    hook.remove_nat(bridges=[ISOLATED])
    assert [r for rules in _chains(netns).values() for r in rules if "locker:alpha:" in r] == []


#: What an administrator puts in LOCKER_USER: a drop of a forward's
#: traffic, a rule that even carries a tag of Locker's, a return.
ADMIN_RULES = [["-d", "10.1.1.2/32", "-p", "tcp", "--dport", "80", "-j", "DROP"],
               ["-s", "192.0.2.99/32", "-m", "comment", "--comment", "locker:alpha:deny",
                "-j", "DROP"],
               ["-j", "RETURN"]]


@pytest.mark.privileged
@needs_legacy
def test_locker_user_is_never_changed_nor_reported(hook, netns) -> None:
    from locker.testing import firewall_suite as suite
    hook.add_nat(bridges=[suite.BRIDGE1])
    for rule in ADMIN_RULES:
        netns.run(["iptables-legacy", "-w", "-A", "LOCKER_USER", *rule])
    admin = _chains(netns)["filter", "LOCKER_USER"]
    assert len(admin) == 3
    assert hook.list_rules(project=None) == Ruleset(nat=frozenset({suite.BRIDGE1}), jumps=True)
    hook.add_forward(forwards=suite.FORWARDS1)
    hook.add_link(links=suite.LINKS1)
    hook.remove_unrecognised(project="alpha")
    hook.remove_forward(forwards=suite.FORWARDS1)
    hook.remove_nat(bridges=[suite.BRIDGE1])
    hook.add_nat(bridges=[suite.BRIDGE1])
    hook.cleanup(project="alpha")
    chains = _chains(netns)
    assert chains["filter", "LOCKER_USER"] == admin
    assert chains["filter", "LOCKER_FORWARD"] == HEAD


@pytest.mark.privileged
@needs_legacy
def test_a_rule_put_before_the_head_of_locker_forward_is_named_and_the_head_restored(
        hook, netns) -> None:
    """LOCKER_USER and LOCKER_ISOLATION must be the first two rules of
    LOCKER_FORWARD, before every accept; a rule inserted above them is
    named, and the next adding hook puts them first again."""
    from locker.testing.firewall_suite import BRIDGE1
    hook.add_nat(bridges=[BRIDGE1])
    netns.run(["iptables-legacy", "-w", "-I", "LOCKER_FORWARD", "1", "-s", "192.0.2.1/32",
               "-j", "ACCEPT"])
    found = hook.list_rules(project="alpha")
    assert not found.jumps
    assert found.entry_missing == ("jumps to LOCKER_USER and LOCKER_ISOLATION not the first "
                                   "rules of LOCKER_FORWARD",)
    hook.add_link(links=[Link("alpha", "web", IPv4Address("10.1.1.2"), "db",
                              IPv4Address("10.1.1.3"))])
    assert _chains(netns)["filter", "LOCKER_FORWARD"] == HEAD + [
        "-s 192.0.2.1/32 -j ACCEPT", "-m comment --comment locker:alpha:dispatch -j LOCKER_FWD_alpha"]
    assert hook.list_rules(project="alpha").jumps


# ------------------------------------------------- the policy on packets

ECHO = """
import http.server, sys
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Echo)
print("ready", flush=True)
server.serve_forever()
"""
FETCH = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as answer:
        print(answer.read().decode())
except OSError:
    print("unreachable")
"""
POLICY_BRIDGE = Bridge("alpha", "locker_alpha", IPv4Network("10.1.1.0/24"))
WEB = Forward("alpha", "web", 8080, IPv4Address("10.1.1.2"), 80)


class Wire:
    """The test namespace as the host, with Locker's bridge ``locker_alpha``
    (10.1.1.1/24, route_localnet on, as the link backends set it), two
    "container" namespaces on it (10.1.1.2, serving on port 80, and its
    sibling 10.1.1.3) and a LAN neighbour (192.0.2.2) that routes
    10.1.1.0/24 through the host (192.0.2.1)."""

    def __init__(self, host, factory) -> None:
        self.host, self.container, self.neighbour = host, factory("lkc"), factory("lkn")
        self.sibling = factory("lks")
        self.servers: list[subprocess.Popen] = []
        self.pgids = tempfile.mkstemp(prefix="locker-wire-")[1]
        run = host.run
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        run(["ip", "link", "add", "locker_alpha", "type", "bridge"])
        run(["ip", "addr", "add", "10.1.1.1/24", "dev", "locker_alpha"])
        run(["ip", "link", "set", "locker_alpha", "up"])
        run(["sysctl", "-qw", "net.ipv4.conf.locker_alpha.route_localnet=1"])
        for ns, here, there, address, route in (
                (self.container, "vc", "vch", "10.1.1.2/24", ["default", "via", "10.1.1.1"]),
                (self.sibling, "vs", "vsh", "10.1.1.3/24", ["default", "via", "10.1.1.1"]),
                (self.neighbour, "vn", "vnh", "192.0.2.2/24", ["10.1.1.0/24", "via", "192.0.2.1"])):
            run(["ip", "link", "add", there, "type", "veth", "peer", "name", here,
                 "netns", ns.name])
            run(["ip", "link", "set", there, "up"])
            ns.run(["ip", "addr", "add", address, "dev", here])
            ns.run(["ip", "link", "set", here, "up"])
            ns.run(["ip", "route", "add", *route])
        run(["ip", "link", "set", "vch", "master", "locker_alpha"])
        run(["ip", "link", "set", "vsh", "master", "locker_alpha"])
        run(["ip", "addr", "add", "192.0.2.1/24", "dev", "vnh"])
        self.serve(self.container, "10.1.1.2", 80)

    def serve(self, ns, address: str, port: int) -> None:
        # A session of its own: `ip netns exec` runs the server as its child,
        # which killing `ip` alone would leave running.
        server = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", ECHO,
                                   address, str(port)], stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
        self.servers.append(server)
        with open(self.pgids, "a") as pgids:  # also from the test's own process
            pgids.write(f"{server.pid}\n")
        assert server.stdout.readline().strip() == "ready"

    def fetch(self, ns, url: str) -> str:
        """The client address the server saw, or "unreachable"."""
        return ns.run([sys.executable, "-c", FETCH, url]).stdout.strip()

    def close(self) -> None:
        """Stop every server, also those the test's own process (a fork,
        see ``locker.testing.pytest_plugin``) started."""
        with open(self.pgids) as pgids:
            for pgid in {int(line) for line in pgids}:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os.unlink(self.pgids)
        for server in self.servers:
            server.wait()


@pytest.fixture
def wire(netns, netns_factory):
    made = Wire(netns, netns_factory)
    try:
        yield made
    finally:
        made.close()


@pytest.mark.privileged
@needs_legacy
def test_a_routed_neighbour_reaches_only_forwards_and_a_drop_in_locker_user_wins(
        hook, netns, wire) -> None:
    direct, forwarded = "http://10.1.1.2:80/", "http://192.0.2.1:8080/"
    assert wire.fetch(wire.neighbour, direct) == "192.0.2.2"     # FORWARD policy accept
    hook.add_nat(bridges=[POLICY_BRIDGE])
    hook.add_forward(forwards=[WEB])
    assert wire.fetch(wire.neighbour, direct) == "unreachable"   # deny
    assert wire.fetch(wire.neighbour, forwarded) == "192.0.2.2"  # the forward
    drop = ["-d", "10.1.1.2/32", "-p", "tcp", "--dport", "80", "-j", "DROP"]
    netns.run(["iptables-legacy", "-w", "-A", "LOCKER_USER", *drop])
    assert wire.fetch(wire.neighbour, forwarded) == "unreachable"
    hook.add_nat(bridges=[POLICY_BRIDGE])                        # the next start / ports
    hook.add_forward(forwards=[WEB])
    assert wire.fetch(wire.neighbour, forwarded) == "unreachable"
    assert _chains(netns)["filter", "LOCKER_USER"] == [" ".join(drop[:2]) + " -p tcp -m tcp "
                                                       "--dport 80 -j DROP"]


@pytest.mark.privileged
@needs_legacy
def test_forwards_work_from_the_host_itself_and_from_the_containers(hook, netns,
                                                                     wire) -> None:
    """nat OUTPUT into LOCKER_PREROUTING (the host's own connections, also
    to 127.0.0.1 with the localhost masquerade), and the hairpin
    masquerade (a container reaching its sibling's forward through a host
    address; its own needs the bridge port's hairpin mode, which is the
    link's business)."""
    hook.add_nat(bridges=[POLICY_BRIDGE])
    hook.add_forward(forwards=[WEB, Forward("alpha", "web", 8081, IPv4Address("10.1.1.2"), 80,
                                            "tcp", IPv4Address("127.0.0.1"))])
    assert wire.fetch(netns, "http://192.0.2.1:8080/") == "192.0.2.1"
    assert wire.fetch(netns, "http://127.0.0.1:8080/") == "10.1.1.1"
    assert wire.fetch(netns, "http://127.0.0.1:8081/") == "10.1.1.1"
    assert wire.fetch(wire.sibling, "http://192.0.2.1:8080/") == "10.1.1.1"
    assert wire.fetch(wire.neighbour, "http://192.0.2.1:8081/") == "unreachable"


@pytest.mark.privileged
@needs_legacy
def test_guard_and_isolate_keep_the_bridge_off_the_hosts_own_services(hook, netns,
                                                                      wire) -> None:
    """A container that routes 127.0.0.1 through its gateway does not reach
    a host service on 127.0.0.1 (guard); an isolated project's container
    reaches the host only at its gateway (isolate)."""
    wire.serve(netns, "127.0.0.1", 9000)
    wire.serve(netns, "0.0.0.0", 9001)
    wire.container.run(["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"])
    wire.container.run(["ip", "route", "add", "127.0.0.1/32", "via", "10.1.1.1"])
    for interface in ("all", "vc"):     # it sends to and accepts replies from 127.0.0.1
        wire.container.run(["sysctl", "-qw", f"net.ipv4.conf.{interface}.route_localnet=1"])
    assert wire.fetch(wire.container, "http://127.0.0.1:9000/") == "10.1.1.2"   # before
    hook.add_nat(bridges=[POLICY_BRIDGE])
    assert wire.fetch(wire.container, "http://127.0.0.1:9000/") == "unreachable"
    assert wire.fetch(wire.container, "http://192.0.2.1:9001/") == "10.1.1.2"
    isolated = Bridge("alpha", "locker_alpha", POLICY_BRIDGE.network, isolated=True)
    hook.add_nat(bridges=[isolated])
    assert wire.fetch(wire.container, "http://192.0.2.1:9001/") == "unreachable"
    assert wire.fetch(wire.container, "http://10.1.1.1:9001/") == "10.1.1.2"


@pytest.mark.privileged
@needs_legacy
def test_duplicate_and_altered_dispatch_rules_are_named_and_replaced(hook, netns) -> None:
    from locker.testing.firewall_suite import BRIDGE1
    hook.add_nat(bridges=[BRIDGE1])
    netns.run(["iptables-legacy", "-w", "-N", "ELSEWHERE"])
    for target in ("LOCKER_FWD_alpha", "ELSEWHERE"):
        netns.run(["iptables-legacy", "-w", "-A", "LOCKER_FORWARD", "-m", "comment",
                   "--comment", "locker:alpha:dispatch", "-j", target])
    found = hook.list_rules(project="alpha")
    assert not found.jumps and found.nat == {BRIDGE1}
    assert set(found.entry_missing) == {
        "1 duplicate dispatch rule(s) jump LOCKER_FWD_alpha in chain LOCKER_FORWARD",
        "altered dispatch rule of project alpha in chain LOCKER_FORWARD"}
    hook.add_nat(bridges=[BRIDGE1])
    assert _chains(netns)["filter", "LOCKER_FORWARD"] == HEAD + [
        "-m comment --comment locker:alpha:dispatch -j LOCKER_FWD_alpha"]
    assert hook.list_rules(project="alpha").jumps


# ------------------------------------------------------------------ port ranges

RANGE_SHIFTED = Forward("alpha", "web", 8000, IPv4Address("10.1.1.2"), 9000, "tcp", count=11)
RANGE_SAME = Forward("alpha", "web", 7000, IPv4Address("10.1.1.2"), 7000, "udp",
                     IPv4Address("192.0.2.1"), count=3)


def test_a_port_range_is_one_dnat_and_one_accept_read_back_as_a_range(hook, netns) -> None:
    from locker.testing import firewall_suite as suite
    from locker.testing.traffic import Lab
    with Lab(netns) as lab:
        lab.bridge(suite.BRIDGE1.name, "10.1.1.1/24")
        lab.wire("web", "vweb", None, [f"{suite.WEB_IP}/24"], gateway="10.1.1.1",
                 master=suite.BRIDGE1.name)
        lab.wire("outside", "uplink", f"{suite.HOST_IP}/24", [f"{suite.OUTSIDE_IP}/24"],
                 routes=["10.1.1.0/24 via 192.0.2.1"])
        lab.forwarding()
        lab.serve("web", "web", "tcp/9000", "tcp/9005", "tcp/9010", "tcp/9011",
                  "udp/7000", "udp/7001", "udp/7002")
        hook.add_nat(bridges=[suite.BRIDGE1])
        single = Forward("alpha", "web", 8080, IPv4Address("10.1.1.2"), 9005)
        # a single port first: the range reuses its rule's shape (RuleBuilder)
        hook.add_forward(forwards=[single, RANGE_SHIFTED, RANGE_SAME])
        suite.stores.store("iptables-legacy").drop_after_forward(netns)
        mine = [(t, line) for t, line in save(netns)
                if "locker:alpha:web:" in line and "8080" not in line and "dport 9005 " not in line]
        assert mine == [
            ("nat", "-A LOCKER_PRE_alpha -p tcp -m tcp --dport 8000:8010 -m comment --comment "
                    "\"locker:alpha:web:dnat\" -j DNAT --to-destination 10.1.1.2:9000-9010/8000"),
            ("nat", "-A LOCKER_PRE_alpha -d 192.0.2.1/32 -p udp -m udp --dport 7000:7002 -m "
                    "comment --comment \"locker:alpha:web:dnat\" -j DNAT --to-destination "
                    "10.1.1.2:7000-7002/7000"),
            ("filter", "-A LOCKER_FWD_alpha -d 10.1.1.2/32 -p tcp -m tcp --dport 9000:9010 -m "
                       "conntrack --ctstate DNAT --ctorigdstport 8000:8010 -m comment "
                       "--comment \"locker:alpha:web:forward\" -j ACCEPT"),
            ("filter", "-A LOCKER_FWD_alpha -d 10.1.1.2/32 -p udp -m udp --dport 7000:7002 -m "
                       "conntrack --ctstate DNAT --ctorigdst 192.0.2.1 --ctorigdstport "
                       "7000:7002 -m comment --comment \"locker:alpha:web:forward\" -j ACCEPT"),
        ]
        found = hook.list_rules(project="alpha")
        assert found.forwards == {single, RANGE_SHIFTED, RANGE_SAME}
        assert found.partial == frozenset() and found.unrecognised == ()
        for host_port in (8000, 8005, 8010):   # first, middle, last: shifted by 1000
            answer = lab.call("outside", "tcp", suite.HOST_IP, host_port)
            assert answer and answer.split()[:2] == ["web", str(host_port + 1000)], answer
        for port in (7000, 7001, 7002):
            answer = lab.call("outside", "udp", suite.HOST_IP, port)
            assert answer and answer.split()[:2] == ["web", str(port)], answer
        # one port past the range: 9011 is served, 8011 is not forwarded
        assert lab.call("outside", "tcp", suite.HOST_IP, 8011, expect=False) is None
        hook.remove_forward(forwards=[RANGE_SHIFTED])
        assert hook.list_rules(project="alpha").forwards == {single, RANGE_SAME}
        assert lab.call("outside", "tcp", suite.HOST_IP, 8005, expect=False) is None
