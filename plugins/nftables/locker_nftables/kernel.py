"""The only module that talks to the kernel: libnftables' JSON API.

Every call builds a new ``nftables.Nftables`` context, so its netlink socket
lives in the network namespace of the calling thread at that moment (tests
move threads between namespaces). Commands are plain JSON values; no nft
command string is ever built from a name.
"""

from __future__ import annotations

import re
from typing import Any

from locker.errors import BackendError

FAMILY = "ip"
TABLE = "locker"

#: Comments Locker writes: nft's text parser refuses more than 128 bytes,
#: libnftables 1.0.6 crashes the process on ~256, and quotes or newlines make
#: a saved ruleset fail to load again.
COMMENT_PATTERN = re.compile(rb"[A-Za-z0-9:_-]{1,128}")

Command = dict[str, Any]


def check_comment(comment: str) -> None:
    """Raise BackendError unless ``comment`` is safe to hand to nft."""
    if not isinstance(comment, str) or not COMMENT_PATTERN.fullmatch(comment.encode()):
        raise BackendError(
            f"refusing the rule comment {comment!r}: nft comments Locker writes must be "
            "1 to 128 bytes of letters, digits, ':', '_' and '-'.")


def check_comments(commands: list[Command]) -> None:
    for command in commands:
        for verb in command.values():
            rule = verb.get("rule") if isinstance(verb, dict) else None
            if rule is not None and "comment" in rule:
                check_comment(rule["comment"])


def _context():
    try:
        import nftables
    except ImportError as error:
        raise BackendError(
            "the nftables Python binding is missing: install python3-nftables "
            f"(Debian/Fedora) or py3-nftables (Alpine) ({error}).") from error
    try:
        ctx = nftables.Nftables()
    except OSError as error:
        raise BackendError(f"libnftables cannot be loaded: {error}; install nftables.") from error
    ctx.set_json_output(True)
    ctx.set_handle_output(True)
    ctx.set_numeric_proto_output(True)
    return ctx


def grouped(commands: list[Command]) -> list[Command]:
    """The same changes with the element commands merged into one command
    per verb and set (libnftables parses one command of 1,000 elements
    2-3 times faster than 1,000 commands of one). Deletions come first (rules,
    then elements), then additions (rules and others, then elements): every
    element deleted is one that an addition may replace."""
    deletes: list[Command] = []
    adds: list[Command] = []
    merged: dict[tuple[str, str], Command] = {}
    for command in commands:
        (verb, body), = command.items()
        element = body.get("element") if isinstance(body, dict) else None
        if element is None:
            (deletes if verb == "delete" else adds).append(command)
            continue
        key = (verb, element["name"])
        if key not in merged:
            merged[key] = {verb: {"element": {**element, "elem": []}}}
        merged[key][verb]["element"]["elem"].extend(element["elem"])
    element_deletes = [c for (verb, _), c in merged.items() if verb == "delete"]
    element_adds = [c for (verb, _), c in merged.items() if verb != "delete"]
    return deletes + element_deletes + adds + element_adds


def run(commands: list[Command], what: str, dry_run: bool = False) -> dict:
    """Run ``commands`` as one nft transaction; ``what`` names the operation
    for the error message. Returns libnftables' JSON output (may be empty).
    With ``dry_run`` the kernel checks the transaction and then drops it."""
    check_comments(commands)
    ctx = _context()
    ctx.set_dry_run(dry_run)
    rc, output, error = ctx.json_cmd({"nftables": commands})
    if rc != 0:
        detail = " ".join(str(error).split()) or f"return code {rc}"
        raise BackendError(f"nftables refused to {what}: {detail}")
    return output or {}


def read(commands: list[Command], what: str) -> list[list[dict] | None]:
    """Run ``list`` commands of single objects (a chain, a map, a set), one
    libnftables call each on one context, and return per command the JSON
    objects it listed, or None where the object does not exist.

    One call per object: libnftables 1.0.6 fills its cache for the first
    command of a batch only, so a batch of listings fails ("Unknown set",
    "No such file or directory"); and ``list table`` would fetch every
    element of every map in the table, other projects' too.
    """
    import json

    ctx = _context()
    found: list[list[dict] | None] = []
    for command in commands:
        rc, output, error = ctx.cmd(json.dumps({"nftables": [command]}))
        if rc != 0:
            if _missing(error):
                found.append(None)
                continue
            detail = " ".join(str(error).split()) or f"return code {rc}"
            raise BackendError(f"nftables refused to {what}: {detail}")
        found.append([item for item in (json.loads(output) if output else {}).get("nftables", [])
                      if "metainfo" not in item])
    return found


def list_rules_only(family: str = FAMILY) -> list[dict] | None:
    """Locker's table without the elements of its maps and sets: its
    chains, rules and the maps' and sets' definitions; None when the table
    does not exist.

    Asked as ``list ruleset ip`` with terse output, then filtered: that is
    the one listing of rules for which libnftables 1.0.6 does not fetch
    every set element of the table first (``list table`` and ``list
    chain`` do, terse or not: ~55 ms for a neighbour of 5,000 forwards,
    against ~1 ms this way). It also lists the other ``ip`` tables' rules
    (not their elements), which Locker then ignores.
    """
    import json

    ctx = _context()
    ctx.set_terse_output(True)
    rc, output, error = ctx.cmd(json.dumps({"nftables": [{"list": {"ruleset": {
        "family": family}}}]}))
    if rc != 0:
        detail = " ".join(str(error).split()) or f"return code {rc}"
        raise BackendError(f"nftables refused to list the {family} ruleset: {detail}")
    found, exists = [], False
    for item in json.loads(output).get("nftables", []) if output else ():
        (kind, body), = item.items()
        if kind == "table":
            exists = exists or (body.get("family"), body.get("name")) == (family, TABLE)
        elif kind != "metainfo" and isinstance(body, dict) and body.get("table") == TABLE \
                and body.get("family") == family:
            found.append(item)
    return found if exists else None


def _missing(error: str) -> bool:
    return "No such file or directory" in str(error)


def list_table(family: str = FAMILY) -> list[dict] | None:
    """The JSON objects of Locker's table (chains and rules) of ``family``
    (``ip``, or ``ip6``: the IPv6 mirror), or None when the table does not
    exist. Reads only Locker's own table, whose JSON form Locker controls."""
    listing = {"list": {"table": {"family": family, "name": TABLE}}}
    try:
        output = run([listing], f"list table {family} {TABLE}")
    except BackendError:
        if not table_exists(family):
            return None
        raise
    return [item for item in output.get("nftables", []) if "metainfo" not in item]


def table_exists(family: str = FAMILY) -> bool:
    output = run([{"list": {"tables": {"family": family}}}], "list tables")
    return any(item.get("table", {}).get("name") == TABLE
               and item["table"].get("family") == family
               for item in output.get("nftables", []))


def version() -> str:
    """libnftables' version, from the metainfo of a listing. Lists the
    flowtables of a family Locker does not use: ``list tables`` would make
    libnftables fetch every rule and element of every table first."""
    output = run([{"list": {"flowtables": {"family": "netdev"}}}], "list flowtables")
    for item in output.get("nftables", []):
        if "metainfo" in item:
            return str(item["metainfo"].get("version", "unknown"))
    return "unknown"


#: Families whose base chains at the forward hook see IPv4 forwarded traffic.
FORWARD_FAMILIES = ("ip", "inet")


def forward_chains() -> list[tuple[str, str, dict, list[list]]]:
    """(family, table, chain object, rule expressions in order) of every
    base chain at the forward hook in the families that see IPv4 traffic,
    Locker's own table left out. One ``list ruleset`` with terse output
    (rules without any set's elements: listing a single chain would make
    libnftables fetch every element of its table first)."""
    import json

    ctx = _context()
    ctx.set_terse_output(True)
    rc, output, error = ctx.cmd(json.dumps({"nftables": [{"list": {"ruleset": None}}]}))
    if rc != 0:
        detail = " ".join(str(error).split()) or f"return code {rc}"
        raise BackendError(f"nftables refused to list the ruleset: {detail}")
    items = json.loads(output).get("nftables", []) if output else []
    chains = {(c["family"], c["table"], c["name"]): c for c in
              (i["chain"] for i in items if "chain" in i)
              if c.get("hook") == "forward" and c.get("family") in FORWARD_FAMILIES
              and (c["family"], c["table"]) != (FAMILY, TABLE)}
    exprs: dict[tuple, list[list]] = {key: [] for key in chains}
    for item in items:
        rule = item.get("rule")
        if rule is not None:
            key = (rule.get("family"), rule.get("table"), rule.get("chain"))
            if key in exprs:
                exprs[key].append(rule.get("expr", []))
    return [(family, table, chain, exprs[(family, table, name)])
            for (family, table, name), chain in chains.items()]
