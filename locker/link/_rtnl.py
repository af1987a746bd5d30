"""The one place that talks to pyroute2.

Uses only what pyroute2 0.7.2 (Debian 12) and 0.9.x (PyPI) share: ``IPRoute``
as a context manager, ``link``/``addr`` with keyword arguments, ``get_links``,
``get_addr``, ``get_routes``, ``link_lookup``, and ``get_attr`` /
``get_nested`` on the messages. pyroute2 is imported inside the functions so
that importing Locker does not pay for it. Every netlink failure leaves this
module as ``RtnlError`` so callers never see pyroute2's types.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface
from typing import Any

from locker.subnets import Address, Route, table_number

IFF_UP = 0x1
IFA_F_NODAD = 0x02
RT_SCOPE_UNIVERSE = 0
#: rtnetlink route types (``RTN_*``) by the names ``ip route`` prints.
#: rtnetlink route protocols (``RTPROT_*``) that ``ip route`` names.
ROUTE_PROTOCOLS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static"}
ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
               6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}


class RtnlError(OSError):
    """A netlink request failed; ``errno`` is the kernel's error number."""


@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    kind: str | None
    up: bool
    alias: str | None = None


def pyroute2_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyroute2")
    except PackageNotFoundError:
        return "unknown"


@contextmanager
def _translated() -> Iterator[None]:
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        yield
    except NetlinkError as exc:
        raise RtnlError(exc.code, str(exc.args[1]) if len(exc.args) > 1 else str(exc)) from exc


class Rtnl:
    """An rtnetlink socket in the calling thread's network namespace.

    Use as a context manager: ``with Rtnl() as rtnl: ...``.
    """

    def __init__(self) -> None:
        self._ipr: Any = None

    def __enter__(self) -> Rtnl:
        from pyroute2 import IPRoute

        with _translated():
            self._ipr = IPRoute()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ipr.close()

    # ------------------------------------------------------------ reading

    def find_link(self, name: str) -> LinkInfo | None:
        """The interface called ``name``, or None when there is none."""
        with _translated():
            indices = self._ipr.link_lookup(ifname=name)
        if not indices:
            return None
        try:
            with _translated():
                (msg,) = self._ipr.link("get", index=indices[0])
        except RtnlError as exc:
            if exc.errno == errno.ENODEV:  # deleted since the lookup
                return None
            raise
        return _link_info(msg)

    def links(self) -> list[LinkInfo]:
        with _translated():
            return [_link_info(msg) for msg in self._ipr.get_links()]

    def ipv4_addresses(self, index: int | None = None) -> list[IPv4Interface]:
        """IPv4 addresses (local address and prefix) of one interface, or of
        every interface when ``index`` is None, in the kernel's order."""
        return [local for _, local, _ in self._ipv4_address_records(index)]

    def ipv4_address_networks(self) -> list[IPv4Network]:
        """The networks of every IPv4 address on every interface; for a
        point-to-point address, the peer's network as well."""
        networks = []
        for _, local, peer in self._ipv4_address_records(None):
            networks.append(local.network)
            if peer is not None and peer.network != local.network:
                networks.append(peer.network)
        return networks

    def ipv4_route_destinations(self) -> list[IPv4Network]:
        """The destination of every IPv4 route in every table, default
        routes (prefix length 0) left out."""
        return [r.network for r in self.ipv4_routes() if r.network.prefixlen]

    def ipv4_routes(self) -> list[Route]:
        """Every IPv4 route of every table, default routes included."""
        names = {info.index: info.name for info in self.links()}
        with _translated():
            routes = self._ipr.get_routes(family=socket.AF_INET)
        return [_route(msg, names) for msg in routes]

    def ipv4_address_facts(self) -> list[Address]:
        """Every IPv4 address with its interface's name (and peer)."""
        names = {info.index: info.name for info in self.links()}
        return [Address(names.get(index, f"#{index}"), local, peer)
                for index, local, peer in self._ipv4_address_records(None)]

    def _ipv4_address_records(
            self, index: int | None) -> list[tuple[int, IPv4Interface, IPv4Interface | None]]:
        with _translated():
            messages = self._ipr.get_addr(family=socket.AF_INET)
        records = []
        for msg in messages:
            if index is not None and msg["index"] != index:
                continue
            prefix = msg["prefixlen"]
            address = msg.get_attr("IFA_ADDRESS")
            local = msg.get_attr("IFA_LOCAL") or address
            if local is None:
                continue
            peer = None
            if address is not None and address != local:
                peer = IPv4Interface(f"{address}/{prefix}")
            records.append((msg["index"], IPv4Interface(f"{local}/{prefix}"), peer))
        return records

    def ipv6_addresses(self, index: int) -> list[IPv6Interface]:
        """The global IPv6 addresses of one interface (no link-local ones)."""
        with _translated():
            messages = self._ipr.get_addr(family=socket.AF_INET6, index=index)
        return [IPv6Interface(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
                for msg in messages
                if msg["index"] == index and msg["scope"] == RT_SCOPE_UNIVERSE
                and msg.get_attr("IFA_ADDRESS")]

    # ------------------------------------------------------------ changing

    def add_bridge(self, name: str) -> None:
        with _translated():
            self._ipr.link("add", ifname=name, kind="bridge")

    def delete_link(self, index: int) -> None:
        with _translated():
            self._ipr.link("del", index=index)

    def add_ipv4_address(self, index: int, interface: IPv4Interface) -> None:
        kwargs: dict[str, Any] = {
            "index": index,
            "address": str(interface.ip),
            "prefixlen": interface.network.prefixlen,
        }
        if interface.network.prefixlen < 31:
            kwargs["broadcast"] = str(interface.network.broadcast_address)
        with _translated():
            self._ipr.addr("add", **kwargs)

    def add_ipv6_address(self, index: int, interface: IPv6Interface) -> None:
        """Add a global IPv6 address without duplicate address detection
        (the bridge's own ``::1``, usable at once)."""
        with _translated():
            self._ipr.addr("add", index=index, address=str(interface.ip),
                           prefixlen=interface.network.prefixlen, family=socket.AF_INET6,
                           flags=IFA_F_NODAD)

    def set_alias(self, index: int, alias: str) -> None:
        """Set the interface alias (``IFLA_IFALIAS``). Only a separate
        request sets it: the kernel ignores an alias sent with ``add``."""
        with _translated():
            self._ipr.link("set", index=index, ifalias=alias)

    def set_up(self, index: int) -> None:
        with _translated():
            self._ipr.link("set", index=index, state="up")


def _link_info(msg: Any) -> LinkInfo:
    return LinkInfo(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        kind=msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
        up=bool(msg["flags"] & IFF_UP),
        alias=msg.get_attr("IFLA_IFALIAS") or None,
    )


def _route(msg: Any, names: dict[int, str]) -> Route:
    dst = msg.get_attr("RTA_DST") or "0.0.0.0"
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    hops = [(msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF"))]
    for hop in msg.get_attr("RTA_MULTIPATH") or ():
        hops.append((hop.get_attr("RTA_GATEWAY"), hop["oif"]))
    return Route(
        network=IPv4Network(f"{dst}/{msg['dst_len']}", strict=False),
        table=table_number(table),
        kind=ROUTE_TYPES.get(msg["type"], str(msg["type"])),
        gateways=tuple(gateway for gateway, _ in hops if gateway),
        devices=tuple(names.get(oif, f"#{oif}") for _, oif in hops if oif),
        protocol=ROUTE_PROTOCOLS.get(msg["proto"], str(msg["proto"])),
    )
