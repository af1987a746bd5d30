"""Derived names: LXC names, bridge names within 15 bytes, rule tags."""

from __future__ import annotations

import hashlib

import pytest

from locker import names
from locker.names import Tag


@pytest.mark.parametrize("name", ["a", "Web2", "x" * names.NAME_MAX])
def test_valid_names(name: str) -> None:
    assert names.is_valid_name(name)


@pytest.mark.parametrize("name", ["", "2web", "web-", "-web", "we_b", "we b", "x" * (names.NAME_MAX + 1),
                                  "wéb", "web\n"])
def test_invalid_names(name: str) -> None:
    assert not names.is_valid_name(name)


def test_lxc_name() -> None:
    assert names.lxc_name("shop", "db") == "shop_db"


def test_short_project_keeps_the_plain_bridge_name() -> None:
    assert names.bridge_name("shop") == "locker_shop"
    assert names.bridge_name("x" * 8) == "locker_" + "x" * 8  # exactly 15


def test_long_project_gets_the_documented_short_form() -> None:
    project = "webshopfrontend"
    digest = hashlib.sha256(project.encode()).hexdigest()[:8]
    assert names.bridge_name(project) == f"lkwebs_{digest}"


@pytest.mark.parametrize("project", ["x" * 9, "y" * names.NAME_MAX, "abcdefghi1", "abcdefghi2"])
def test_every_bridge_name_fits_an_interface_name(project: str) -> None:
    assert len(names.bridge_name(project)) <= names.IFNAME_MAX


def test_long_forms_differ_for_names_that_share_a_prefix() -> None:
    assert names.bridge_name("abcdefghi1") != names.bridge_name("abcdefghi2")


def test_a_short_form_never_looks_like_a_plain_name() -> None:
    assert not names.bridge_name("z" * 20).startswith(names.BRIDGE_PREFIX)


@pytest.mark.parametrize("tag, text", [
    (Tag("shop", "masquerade"), "locker:shop:masquerade"),
    (Tag("shop", "dnat", "web"), "locker:shop:web:dnat"),
    (Tag("shop", "link-back", "web", "db"), "locker:shop:web:link-back:db"),
    # a container may be named like a purpose: the number of parts decides
    (Tag("shop", "forward", "link"), "locker:shop:link:forward"),
])
def test_tag_text_and_round_trip(tag: Tag, text: str) -> None:
    assert str(tag) == text
    assert Tag.parse(text) == tag


@pytest.mark.parametrize("comment", [
    None, "", "LOCKER", "locker", "locker:", "locker:shop", "other:shop:masquerade",
    "locker:shop:bogus", "locker:shop-:masquerade", "locker:shop:web:dnat:db:extra",
    "locker:shop:web:link:", "xlocker:shop:masquerade",
])
def test_foreign_or_broken_comments_are_not_tags(comment: str | None) -> None:
    assert Tag.parse(comment) is None


def test_tag_rejects_bad_parts() -> None:
    with pytest.raises(ValueError):
        Tag("shop", "nonsense")
    with pytest.raises(ValueError):
        Tag("shop", "dnat", "we b")
    with pytest.raises(ValueError):
        Tag("shop:x", "masquerade")


def test_longest_tag_fits_nft_comments() -> None:
    n = names.NAME_MAX
    tag = Tag("p" * n, "link-back", "c" * n, "q" * n)
    assert len(str(tag).encode()) <= 120
    assert set(str(tag)) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-")


def test_bridge_alias_round_trip() -> None:
    assert names.bridge_alias("shop") == "locker:shop"
    assert names.project_of_bridge_alias("locker:shop") == "shop"
    assert Tag.parse(names.bridge_alias("shop")) is None, "a bridge mark is not a rule tag"


@pytest.mark.parametrize("alias", [
    None, "", "locker", "locker:", "Locker:shop", "lxc:shop", "locker:sh op", "locker:shop:x",
    "locker:2shop", "locker:" + "x" * (names.NAME_MAX + 1),
])
def test_foreign_or_broken_aliases_name_no_project(alias: str | None) -> None:
    assert names.project_of_bridge_alias(alias) is None


def test_a_bridge_is_lockers_when_its_alias_names_the_project_of_its_name() -> None:
    long = "webshopfrontend"
    assert names.is_locker_bridge("locker_shop", "locker:shop")
    assert names.is_locker_bridge(names.bridge_name(long), names.bridge_alias(long))
    assert not names.is_locker_bridge("locker_shop", "locker:blog"), "another project's mark"
    assert not names.is_locker_bridge("locker_shop", None)
    assert not names.is_locker_bridge("locker_shop", "made by hand")


@pytest.mark.parametrize("name", ["my-app", "web-1", "a-b-c", "x"])
def test_hyphens_inside_a_name_are_valid(name: str) -> None:
    assert names.is_valid_name(name)
    assert names.lxc_name(name, "web").split("_") == [name, "web"]


@pytest.mark.parametrize("text, suggestion", [
    ("my_app", "my-app"), ("My App", "My-App"), ("2048-game", "game"), ("app.", "app"),
    ("___", None), ("x" * 40, "x" * 32),
])
def test_a_name_is_suggested_for_a_bad_directory_name(text: str, suggestion) -> None:
    assert names.suggested_name(text) == suggestion
