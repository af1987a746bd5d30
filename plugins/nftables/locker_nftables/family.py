"""The IPv6 mirror of Locker's table: ``ip6 locker`` holds the same chains,
maps, sets and rules as ``ip locker``, for the projects with IPv6.

Everything is written once, in the words of the ``ip`` family; a command
for the ``ip6`` table is the same command with the family's words
exchanged (``to_family``), and a listing of the ``ip6`` table is read back
in the ``ip`` family's words (``from_family``) by the same parsers. The
words are exact JSON values, never parts of strings: the family of a
command or an object (``"family": "ip"``), a payload's protocol
(``ip saddr``, ``ip daddr``), the original-direction address of conntrack
(``ct original ip daddr``) and the address type of maps and sets
(``ipv4_addr``). Addresses themselves are carried as they are: the
parsers take either family.
"""

from __future__ import annotations

from typing import Any

IP, IP6 = "ip", "ip6"
FAMILIES = (IP, IP6)

_TO6 = {("family", "ip"): "ip6", ("protocol", "ip"): "ip6", ("key", "ip daddr"): "ip6 daddr",
        ("key", "ip saddr"): "ip6 saddr"}
_FROM6 = {(k, new): old for (k, old), new in _TO6.items()}
_TYPES = {"ipv4_addr": "ipv6_addr"}
_TYPES_BACK = {new: old for old, new in _TYPES.items()}


def of_version(version: int) -> str:
    """The table's family of an address family (4 or 6)."""
    return IP6 if version == 6 else IP


def to_family(value: Any, family: str) -> Any:
    """``value`` (commands or objects in the ``ip`` family's words) for
    ``family``."""
    return value if family == IP else _swap(value, _TO6, _TYPES)


def from_family(value: Any, family: str) -> Any:
    """A listing of ``family``'s table in the ``ip`` family's words."""
    return value if family == IP else _swap(value, _FROM6, _TYPES_BACK)


def _swap(value: Any, words: dict, types: dict) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, str) and (key, item) in words:
                out[key] = words[(key, item)]
            elif key in ("type", "map") and isinstance(item, str):
                out[key] = types.get(item, item)
            elif key in ("type", "map") and isinstance(item, list):
                out[key] = [types.get(i, i) if isinstance(i, str) else i for i in item]
            else:
                out[key] = _swap(item, words, types)
        return out
    if isinstance(value, list):
        return [_swap(item, words, types) for item in value]
    return value
