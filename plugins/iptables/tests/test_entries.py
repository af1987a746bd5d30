"""The fast entry paths agree with python-iptables' generic ones: rules
built from prototypes are byte for byte those ``build_rule`` makes, rules
read from their bytes give what ``read_rule`` gives, and a rule restored
from its bytes is the rule that was deleted."""

from __future__ import annotations

import shutil
from ipaddress import IPv4Address, IPv4Network

import pytest

from helpers import save
from locker.model import Bridge, Forward, Link

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(shutil.which("iptables-legacy") is None,
                                 reason="needs iptables-legacy (package iptables)")]

FORWARDS = [Forward("alpha", "web", 8080, IPv4Address("10.1.1.2"), 80),
            Forward("alpha", "web", 8081, IPv4Address("10.1.1.2"), 81),
            Forward("alpha", "web", 8082, IPv4Address("10.1.1.2"), 80, "tcp",
                    IPv4Address("192.0.2.1")),
            Forward("alpha", "db", 5353, IPv4Address("10.1.1.3"), 53, "udp",
                    IPv4Address("192.0.2.1"))]
BRIDGE = Bridge("alpha", "locker_alpha", IPv4Network("10.1.1.0/24"))
LINK = Link("alpha", "web", IPv4Address("10.1.1.2"), "db", IPv4Address("10.1.1.3"))

#: Rules of odd shapes carrying Locker's tags: read as no Spec (or as
#: python-iptables reads them), never as one of Locker's values.
ODD_NAT = [
    "-p tcp --dport 9000:9010 -j DNAT --to-destination 10.1.1.2:80",
    "-p tcp --sport 5 --dport 9001 -j DNAT --to-destination 10.1.1.2:80",
    "-p tcp ! --dport 9002 -j DNAT --to-destination 10.1.1.2:80",
    "-p tcp --dport 9003 -j DNAT --to-destination 10.1.1.2",
    "-p tcp --dport 9004 -j DNAT --to-destination 10.1.1.2:80-90",
    "-p tcp --dport 9005 -j DNAT --to-destination 10.1.1.2-10.1.1.4:80",
    "-p tcp --dport 9006 -j DNAT --to-destination 10.1.1.2:80 --random",
    "! -p tcp -j RETURN",
    "-p icmp -j RETURN",
    "-f -j RETURN",
]
ODD_FILTER = [
    "! -s 10.9.0.0/16 -d 10.1.1.2/32 -j ACCEPT",
    "-i eth+ -o ! lo -j ACCEPT",
    "-p udp --dport 53 -j DROP",
    "-p tcp --tcp-flags SYN SYN --dport 80 -j ACCEPT",
    "-m conntrack --ctstate NEW -j ACCEPT",
    "-d 10.1.1.2/32 -j RETURN",
    # conntrack matches near the forward accept's shape
    "-d 10.1.1.2/32 -p tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080:8090 -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctstate DNAT ! --ctorigdstport 8080 -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdst 192.0.2.0/24 "
    "--ctorigdstport 8080 -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctstate DNAT ! --ctorigdst 192.0.2.1 -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctstate DNAT,SNAT --ctorigdstport 8080 -j ACCEPT",
    "-p tcp --dport 80 -m conntrack ! --ctstate DNAT --ctorigdstport 8080 -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctstate DNAT --ctorigsrc 192.0.2.9 -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctstate DNAT --ctdir ORIGINAL -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctorigdstport 8080 -j ACCEPT",
    "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-m state --state RELATED,ESTABLISHED -j ACCEPT",
    "-p tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 "
    "-m conntrack --ctstate DNAT -j ACCEPT",
]


@pytest.fixture
def filled(netns):
    from locker.plugins import new_manager
    from locker_iptables import IptablesBackend
    hook = new_manager(IptablesBackend()).hook
    hook.add_nat(bridges=[BRIDGE])
    hook.add_forward(forwards=FORWARDS)
    hook.add_link(links=[LINK])
    for table, chain, rules in (("nat", "LOCKER_PRE_alpha", ODD_NAT),
                                ("filter", "LOCKER_FWD_alpha", ODD_FILTER)):
        for rule in rules:
            argv = rule.replace("-o ! lo", "! -o lo").split()
            netns.run(["iptables-legacy", "-w", "-t", table, "-A", chain, *argv,
                       "-m", "comment", "--comment", "locker:alpha:web:dnat"])
    return netns


def _tables(names=("nat", "filter")):
    from locker_iptables.kernel import load_iptc
    from locker_iptables.loader import only_tables
    from locker_iptables.rules import BASE, FAMILY
    iptc = load_iptc()
    with only_tables(iptc, list(names)):
        for name in names:
            table = (iptc.Table6 if FAMILY[name] == 6 else iptc.Table)(BASE[name])
            table.refresh()
            yield iptc, name, table


def _locker_chains(table) -> list[str]:
    return [chain.name for chain in table.chains if chain.name.startswith("LOCKER_")]


def test_reading_bytes_agrees_with_python_iptables(filled) -> None:
    from locker_iptables.entries import read_chain, read_rule
    from locker_iptables.rules import parse, ruleset
    compared, specs = 0, []
    for iptc, name, table in _tables():
        for chain in _locker_chains(table):
            for entry in read_chain(iptc, name, table, chain, specs=True):
                generic = table.first_rule(chain)
                for _ in range(entry.index):
                    generic = table.next_rule(generic)
                rule = table.create_rule(generic, iptc.Chain(table, chain))
                try:
                    expected = read_rule(name, chain, rule)
                except ValueError:  # python-iptables' reading fails on port ranges
                    expected = (entry.comment, entry.target, None)
                assert (entry.comment, entry.target, entry.spec) == expected, entry
                compared += 1
                specs += [entry.spec] if entry.spec else []
    # Locker's own: a DNAT and an accept per forward; masquerade, hairpin,
    # localhost, outbound, replies, deny, guard; 2 links; 2 dispatch rules;
    # the jumps to LOCKER_USER and LOCKER_ISOLATION.
    assert compared == 13 + 2 * len(FORWARDS) + len(ODD_NAT) + len(ODD_FILTER)
    found = ruleset({parse(spec) for spec in specs} - {None}, jumps=True)
    assert found.forwards == frozenset(FORWARDS)
    assert found.nat == frozenset({BRIDGE}) and found.links == frozenset({LINK})


def test_lockers_rules_are_read_from_their_bytes(filled, monkeypatch) -> None:
    """Only the masquerade (MASQUERADE) goes through python-iptables'
    reader: forward accepts and replies (conntrack) do not, or reading
    thousands of forwards would cost ~0.3 ms each."""
    from locker.names import Tag
    from locker_iptables import entries
    generic = []

    def spy(table, chain, rule):
        found = read_rule(table, chain, rule)
        generic.append(Tag.parse(found[0]))
        return found

    read_rule = entries.read_rule
    monkeypatch.setattr(entries, "read_rule", spy)
    for iptc, name, table in _tables():
        for chain in _locker_chains(table):
            entries.read_chain(iptc, name, table, chain, specs=True)
    purposes = {tag.purpose for tag in generic if tag is not None}
    assert "masquerade" in purposes
    assert not purposes & {"forward", "replies", "outbound", "link", "link-back"}, purposes


def test_built_entries_are_those_of_python_iptables(netns) -> None:
    from locker_iptables import rules
    from locker_iptables.entries import RuleBuilder, build_rule
    tables = {name: (iptc, table) for iptc, name, table in _tables(rules.TABLES)}
    iptc = tables["nat"][0]
    for nat in ("nat", "nat6"):
        for chain in ("LOCKER_PREROUTING", "LOCKER_POSTROUTING", "LOCKER_PRE_alpha"):
            tables[nat][1].create_chain(chain)
    for filter_ in ("filter", "filter6"):
        for chain in ("LOCKER_FORWARD", "LOCKER_FWD_alpha", "LOCKER_USER", "LOCKER_ISOLATION",
                      "LOCKER_INPUT"):
            tables[filter_][1].create_chain(chain)
    from dataclasses import replace
    specs = (rules.jump_specs() + rules.nat_specs(replace(BRIDGE, isolated=True))
             + rules.link_specs(LINK)
             + [rules.dispatch_spec(t, "alpha") for t in rules.TABLES]
             + [s for f in FORWARDS for s in rules.forward_specs(f)])
    builder = RuleBuilder(iptc)
    for spec in specs * 2:  # the second round reuses every prototype
        expected = build_rule(iptc, spec)
        expected.final_check()
        assert bytes(builder.entry(spec)) == bytes(expected.rule), spec


def test_a_deleted_rule_is_restored_as_it_was(filled) -> None:
    from locker_iptables.entries import read_chain, restore
    from locker_iptables.kernel import _delete_at
    before = save(filled)
    for iptc, name, table in _tables():
        table.autocommit = False
        try:
            for chain in ["PREROUTING", "POSTROUTING", "FORWARD", *_locker_chains(table)]:
                if not table.is_chain(chain):
                    continue
                for entry in read_chain(iptc, name, table, chain, specs=False):
                    _delete_at(table, chain, entry.index)
                    restore(iptc, name, table, chain, entry, entry.index)
            table.commit()
        finally:
            table.autocommit = True
            table.refresh()
    assert save(filled) == before
