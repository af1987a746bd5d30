"""What ``ip -j`` reports, as plain values: an interface (``LinkInfo``),
its IPv4 addresses and the routes, as ``locker.subnets.Address`` and
``locker.subnets.Route``, and the few changes the backend makes."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface
from typing import Any

from locker.subnets import Address, Route
from locker_ipr2.command import CommandError, Ip


@dataclass(frozen=True)
class LinkInfo:
    name: str
    kind: str | None
    up: bool
    alias: str | None


class Kernel:
    """The link operations the backend needs, each one ``ip`` command."""

    def __init__(self, ip: Ip) -> None:
        self.ip = ip

    # ------------------------------------------------------------ reading

    def link(self, name: str) -> LinkInfo | None:
        """The interface called ``name`` (``ip -d -j link show``), or None."""
        try:
            found = self.ip.json("-d", "link", "show", "dev", name)
        except CommandError as exc:
            if exc.says("does not exist", "Cannot find device"):
                return None
            raise
        return parse_link(found[0]) if found else None

    def addresses(self, name: str | None = None) -> list[Address]:
        """IPv4 addresses of one interface, or of all; kernel order."""
        args = ["-4", "addr", "show", *(["dev", name] if name else [])]
        return parse_addresses(self.ip.json(*args))

    def addresses6(self, name: str) -> list[IPv6Interface]:
        """The global IPv6 addresses of one interface (``scope global``)."""
        return parse_addresses6(self.ip.json("-6", "addr", "show", "dev", name,
                                             "scope", "global"))

    def routes(self) -> list[Route]:
        """Every IPv4 route of every table."""
        return parse_routes(self.ip.json("-4", "route", "show", "table", "all"))

    # ------------------------------------------------------------ changing

    def add_bridge(self, name: str) -> None:
        self.ip.run("link", "add", "name", name, "type", "bridge")

    def delete(self, name: str) -> None:
        self.ip.run("link", "del", "dev", name)

    def set_alias(self, name: str, alias: str) -> None:
        self.ip.run("link", "set", "dev", name, "alias", alias)

    def set_up(self, name: str) -> None:
        self.ip.run("link", "set", "dev", name, "up")

    def add_address6(self, name: str, interface: IPv6Interface) -> None:
        self.ip.run("-6", "addr", "add", str(interface), "dev", name, "nodad")

    def add_address(self, name: str, interface: IPv4Interface) -> None:
        broadcast = ([] if interface.network.prefixlen >= 31
                     else ["broadcast", str(interface.network.broadcast_address)])
        self.ip.run("addr", "add", str(interface), *broadcast, "dev", name)


# ------------------------------------------------------------------ parsing


def parse_link(entry: dict[str, Any]) -> LinkInfo:
    return LinkInfo(
        name=entry["ifname"],
        kind=(entry.get("linkinfo") or {}).get("info_kind"),
        up="UP" in entry.get("flags", ()),
        alias=entry.get("ifalias") or None,
    )


def parse_addresses(entries: list[dict[str, Any]]) -> list[Address]:
    found = []
    for entry in entries:
        for info in entry.get("addr_info", ()):
            if info.get("family") != "inet" or "local" not in info:
                continue
            prefix = info["prefixlen"]
            local = IPv4Interface(f"{info['local']}/{prefix}")
            peer = info.get("address")
            found.append(Address(entry["ifname"], local,
                                 IPv4Interface(f"{peer}/{prefix}")
                                 if peer and peer != info["local"] else None))
    return found


def parse_addresses6(entries: list[dict[str, Any]]) -> list[IPv6Interface]:
    return [IPv6Interface(f"{info['local']}/{info['prefixlen']}")
            for entry in entries for info in entry.get("addr_info", ())
            if info.get("family") == "inet6" and "local" in info
            and info.get("scope") == "global"]


def parse_routes(entries: list[dict[str, Any]]) -> list[Route]:
    found = []
    for entry in entries:
        dst = entry.get("dst")
        if not dst:
            continue
        hops = [entry, *entry.get("nexthops", ())]
        found.append(Route(
            network=IPv4Network("0.0.0.0/0" if dst == "default" else dst, strict=False),
            table=str(entry.get("table", "main")),
            kind=entry.get("type", "unicast"),
            gateways=tuple(g for g in (_gateway(hop) for hop in hops) if g),
            devices=tuple(hop["dev"] for hop in hops if hop.get("dev")),
            protocol=str(entry.get("protocol", "boot")),
        ))
    return found


def _gateway(hop: dict[str, Any]) -> str | None:
    via = hop.get("via")
    return hop.get("gateway") or (via.get("host") if isinstance(via, dict) else None)
