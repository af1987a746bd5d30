"""A project's network rules rebuilt from the pieces a backend found."""

from ipaddress import IPv4Address, IPv4Network

from locker.model import UNKNOWN_NETWORK, Bridge
from locker.names import PURPOSES, Tag
from locker.pieces import NAT_PURPOSES, nat_bridges, nat_doomed, nat_keys

NET = IPv4Network("10.1.1.0/24")
OTHER = IPv4Network("10.1.2.0/24")
NAME = "locker_shop"
BRIDGE = Bridge("shop", NAME, NET)
ISOLATED = Bridge("shop", NAME, NET, isolated=True)
OLD_LAYOUT = {("masquerade", "shop", NET), ("outbound", "shop", NAME), ("replies", "shop", NAME)}


def test_every_rule_of_a_bridge_is_one_complete_bridge() -> None:
    assert nat_bridges(nat_keys(BRIDGE)) == ({BRIDGE}, set())
    assert nat_bridges(nat_keys(ISOLATED)) == ({ISOLATED}, set())


def test_the_rules_of_a_bridge() -> None:
    assert nat_keys(BRIDGE) == OLD_LAYOUT | {
        ("hairpin", "shop", NET), ("deny", "shop", NAME), ("localhost", "shop", NAME),
        ("guard", "shop", NAME)}
    assert nat_keys(ISOLATED) == nat_keys(BRIDGE) | {
        ("isolate", "shop", (NAME, IPv4Address("10.1.1.1")))}


def test_every_purpose_is_a_tag_purpose() -> None:
    assert set(NAT_PURPOSES) <= set(PURPOSES)
    for purpose in ("deny", "hairpin", "localhost", "guard", "isolate"):
        assert Tag.parse(f"locker:shop:{purpose}") == Tag("shop", purpose)


def test_the_previous_layout_is_partial() -> None:
    """Masquerade, outbound and replies alone (before deny, hairpin,
    localhost and guard): the repair adds what is missing."""
    assert nat_bridges(OLD_LAYOUT) == (set(), {BRIDGE})


def test_any_missing_rule_makes_it_partial() -> None:
    for missing in nat_keys(ISOLATED) - {("isolate", "shop", (NAME, NET[1]))}:
        complete, partial = nat_bridges(nat_keys(ISOLATED) - {missing})
        assert not complete, missing
        assert ISOLATED in partial, missing


def test_without_the_isolate_rule_it_reads_as_not_isolated() -> None:
    assert nat_bridges(nat_keys(ISOLATED) - {("isolate", "shop", (NAME, NET[1]))}) == (
        {BRIDGE}, set())


def test_an_isolate_rule_of_another_gateway_is_partial() -> None:
    keys = nat_keys(BRIDGE) | {("isolate", "shop", (NAME, OTHER[1]))}
    complete, partial = nat_bridges(keys)
    assert complete == {BRIDGE}
    assert partial == {Bridge("shop", NAME, UNKNOWN_NETWORK, True)}


def test_missing_pieces_are_partial_and_a_missing_masquerade_has_no_network() -> None:
    assert nat_bridges({("masquerade", "shop", NET)}) == (set(), {BRIDGE})
    assert nat_bridges({("hairpin", "shop", NET)}) == (set(), {BRIDGE})
    assert nat_bridges({("outbound", "shop", NAME)}) == (
        set(), {Bridge("shop", NAME, UNKNOWN_NETWORK)})
    assert nat_bridges({("deny", "shop", NAME)}) == (
        set(), {Bridge("shop", NAME, UNKNOWN_NETWORK)})
    assert nat_bridges({("isolate", "shop", (NAME, NET[1]))}) == (
        set(), {Bridge("shop", NAME, UNKNOWN_NETWORK, True)})


def test_removal_takes_every_rule_of_the_bridge() -> None:
    assert nat_doomed([ISOLATED], nat_keys(ISOLATED)) == nat_keys(ISOLATED)
    assert nat_doomed([BRIDGE], nat_keys(ISOLATED)) == nat_keys(ISOLATED)


def test_removal_of_a_moved_network_keeps_the_rules_of_the_name() -> None:
    moved = Bridge("shop", NAME, OTHER, True)
    keys = nat_keys(moved) | {("masquerade", "shop", NET), ("hairpin", "shop", NET),
                              ("isolate", "shop", (NAME, NET[1]))}
    assert nat_doomed([ISOLATED], keys) == {
        ("masquerade", "shop", NET), ("hairpin", "shop", NET),
        ("isolate", "shop", (NAME, NET[1]))}


def test_removal_of_an_unknown_network_takes_what_names_the_bridge() -> None:
    keys = {("deny", "shop", NAME), ("isolate", "shop", (NAME, NET[1]))}
    unknown = Bridge("shop", NAME, UNKNOWN_NETWORK, True)
    assert nat_bridges(keys) == (set(), {unknown})
    assert nat_doomed([unknown], keys) >= keys
    stray = nat_keys(BRIDGE) | {("isolate", "shop", (NAME, OTHER[1]))}
    assert nat_doomed([unknown], stray) & stray == {("isolate", "shop", (NAME, OTHER[1]))}


def test_other_projects_are_apart() -> None:
    other = Bridge("blog", "locker_blog", OTHER)
    assert nat_bridges(nat_keys(BRIDGE) | nat_keys(other)) == ({BRIDGE, other}, set())
    assert nat_doomed([other], nat_keys(BRIDGE) | nat_keys(other)) & nat_keys(BRIDGE) == set()
