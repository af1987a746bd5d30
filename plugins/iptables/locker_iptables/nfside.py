"""The nf_tables side of the host, read for ``find_blockers``: the base
chains at the forward hook of other tools' nftables tables (iptables-nft's
``ip filter FORWARD`` among them). Packets pass both rule stores, so a drop
there drops what Locker's legacy rules accept.

Read through the nftables Python binding when it is importable, else
through ``nft -j`` with a short timeout; nothing is read when neither is
there.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from locker.blockers import run_briefly

#: Families whose forward-hook base chains see IPv4 forwarded traffic.
FAMILIES = ("ip", "inet")

Reader = Callable[[dict], dict | None]
Chain = tuple[str, str, dict, list[list]]


def _binding_reader() -> Reader | None:
    try:
        import nftables
    except ImportError:
        return None

    def read(command: dict) -> dict | None:
        ctx = nftables.Nftables()
        ctx.set_json_output(True)
        rc, output, _error = ctx.json_cmd({"nftables": [command]})
        return output if rc == 0 and output else None

    return read


def _cli_command(command: dict) -> list[str]:
    (verb, what), = command.items()
    (kind, spec), = what.items()
    return ["nft", "-j", verb, kind, *(spec[k] for k in ("family", "table", "name") if k in spec)]


def _cli_reader(command: dict) -> dict | None:
    done = run_briefly(_cli_command(command))
    if done is None or done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout)
    except ValueError:
        return None


def forward_chains(read: Reader | None = None) -> list[Chain]:
    """(family, table, chain object, rule expressions) of each forward-hook
    base chain in the families that see IPv4; empty when nothing can be
    read."""
    read = read or _binding_reader() or _cli_reader
    listing = read({"list": {"chains": {}}}) or {}
    chains = [item["chain"] for item in listing.get("nftables", [])
              if "chain" in item and item["chain"].get("hook") == "forward"
              and item["chain"].get("family") in FAMILIES]
    found = []
    for chain in chains:
        detail = read({"list": {"chain": {"family": chain["family"], "table": chain["table"],
                                          "name": chain["name"]}}}) or {}
        exprs = [item["rule"].get("expr", []) for item in detail.get("nftables", [])
                 if "rule" in item]
        found.append((chain["family"], chain["table"], chain, exprs))
    return found
