"""The ``ipr2`` link backend: every *Link* hook by running ``ip`` (iproute2,
JSON output), IPv4 forwarding through /proc.

``ip`` does every step Locker needs (``ip link add ... type bridge``, the
alias, the address, up, delete), so neither ``bridge`` nor ``brctl`` is
used. The rules every link backend shares (names, owner mark, subnet
choice) come from ``locker.link.rules`` and ``locker.subnets``; this module
only reads and changes the kernel through ``ip`` and turns a failing
command into a ``BackendError`` that quotes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from ipaddress import IPv4Network

from locker import faults, subnets
from locker.errors import BackendError
from locker.hookspecs import hookimpl
from locker.link import rules
from locker.model import Availability, Bridge, BridgeState
from locker.names import bridge_alias, is_locker_bridge
from locker_ipr2.command import CommandError, Ip, find_tool
from locker_ipr2.kernel import Kernel, LinkInfo

#: The first iproute2 whose ``ip -j`` covers links, addresses and routes.
MINIMUM = "4.18"
_VERSION = re.compile(r"iproute2-(?:ss)?([0-9][0-9.]*)")


class Ipr2Backend:
    """Link backend running ``ip``; it keeps no state between hook calls."""

    locker_api = 2  # the plugin API it is written for (locker.plugins.PLUGIN_API)

    def __init__(self) -> None:
        self._path = find_tool("ip")

    @hookimpl
    def link_availability(self) -> Availability:
        if self._path is None:
            return Availability(False, "the ip command is not installed: install iproute2 "
                                       f"{MINIMUM} or newer (`apt-get install iproute2`).")
        ip = Ip(self._path)
        try:
            version = _version(ip.run("-V"))
        except CommandError as exc:
            return Availability(False, f"{self._path} cannot be run: {exc}.")
        try:  # the JSON output this backend reads
            ip.json("-d", "link", "show", "dev", "lo")
            ip.json("-4", "route", "show", "table", "all")
        except CommandError as exc:
            return Availability(False, f"{self._path} (iproute2 {version}) has no usable JSON "
                                       f"output ({exc}): install iproute2 {MINIMUM} or newer.")
        return Availability(True, f"{self._path} (iproute2 {version}) with JSON output.",
                            details={"ip": self._path, "iproute2": version})

    @hookimpl
    def allocate_subnet(self, bridge: str, pool: IPv4Network,
                        reserved: Sequence[IPv4Network]) -> IPv4Network:
        rules.check_name(bridge)
        with self._kernel(f"choose a subnet for bridge {bridge!r}") as kernel:
            link = kernel.link(bridge)
            if link is not None:
                rules.require_bridge(link.name, link.kind)
                rules.require_not_foreign(link.name, link.alias)
                addresses = kernel.addresses(bridge)
                if addresses:
                    return addresses[0].address.network
            facts = kernel.addresses(), kernel.routes()
        return subnets.allocate(*facts, reserved=reserved, pool=pool)

    @hookimpl
    def ensure_bridge(self, bridge: Bridge, adopt: bool) -> BridgeState:
        name = bridge.name
        rules.check_name(name)
        rules.check_derived(bridge)
        with self._kernel(f"set up bridge {name!r}") as kernel:
            link = kernel.link(name)
            created = False
            if link is None:
                # "File exists": another program made it in between; not ours to undo.
                created = _tolerate(("File exists",), lambda: kernel.add_bridge(name))
                link = _must_find(kernel, name)
            rules.require_bridge(link.name, link.kind)
            try:
                if created:  # the kernel ignores an alias sent with the creation
                    faults.point("bridge-created")
                    kernel.set_alias(name, bridge_alias(bridge.project))
                elif adopt and not link.alias:
                    kernel.set_alias(name, bridge_alias(bridge.project))
                else:
                    rules.require_owned(link.name, link.alias, bridge.project)
                if not kernel.addresses(name):
                    _tolerate(("File exists", "already assigned"),
                              lambda: kernel.add_address(name, bridge.interface))
                if bridge.interface6 is not None:
                    rules.ensure_bridge_ipv6(name)
                    if bridge.interface6 not in kernel.addresses6(name):
                        _tolerate(("File exists", "already assigned"),
                                  lambda: kernel.add_address6(name, bridge.interface6))
                if not link.up:
                    kernel.set_up(name)
                rules.ensure_route_localnet(name)
            except BaseException as failure:
                if created:  # leave the kernel as it was, or say why it is not
                    try:
                        kernel.delete(name)
                    except CommandError as undo:
                        if isinstance(failure, Exception):
                            raise rules.rollback_failed(name, failure, undo) from failure
                raise
            return _state_of(kernel, _must_find(kernel, name))

    @hookimpl
    def subnet_conflicts(self, bridge: str) -> list[str]:
        rules.check_name(bridge)
        with self._kernel(f"check the subnet of bridge {bridge!r}") as kernel:
            link = kernel.link(bridge)
            if link is None or link.kind != "bridge":
                return []
            own = kernel.addresses(bridge)
            if not own:
                return []
            return subnets.conflicts(own[0].address.network, bridge,
                                     kernel.addresses(), kernel.routes())

    @hookimpl
    def remove_bridge(self, name: str) -> None:
        rules.check_name(name)
        with self._kernel(f"remove bridge {name!r}") as kernel:
            link = kernel.link(name)
            if link is None:
                return
            rules.require_bridge(link.name, link.kind)
            rules.require_owned(link.name, link.alias)
            _tolerate(("Cannot find device", "does not exist"), lambda: kernel.delete(name))

    @hookimpl
    def find_bridge(self, name: str) -> BridgeState | None:
        rules.check_name(name)
        with self._kernel(f"read bridge {name!r}") as kernel:
            link = kernel.link(name)
            if link is None or link.kind != "bridge":
                return None
            return _state_of(kernel, link)

    @hookimpl
    def ensure_ip_forwarding(self, ipv6: bool) -> bool:
        return rules.ensure_forwarding(ipv6)

    # ------------------------------------------------------------ helpers

    @contextmanager
    def _kernel(self, doing: str) -> Iterator[Kernel]:
        """A ``Kernel``; a failing command inside becomes one BackendError
        saying what Locker was doing and quoting the command."""
        if self._path is None:
            raise BackendError(f"Cannot {doing}: the ip command is not installed; install "
                               "iproute2, or choose the netlink link backend.")
        try:
            yield Kernel(Ip(self._path))
        except CommandError as exc:
            raise BackendError(f"Cannot {doing}: {exc}{_hint(exc)}") from exc


def _version(text: str) -> str:
    found = _VERSION.search(text)
    return found.group(1).rstrip(".") if found else text.strip() or "of unknown version"


def _hint(exc: CommandError) -> str:
    if exc.says("Operation not permitted", "Permission denied"):
        return "; run Locker as root (it needs CAP_NET_ADMIN)."
    if exc.says("Unknown device type", "Operation not supported"):
        return "; this kernel lacks bridge support (load the bridge module)."
    return "."


def _tolerate(phrases: tuple[str, ...], action: Callable[[], object]) -> bool:
    """Run ``action``; a failure saying one of ``phrases`` means it was
    already done. True when the action itself did it."""
    try:
        action()
    except CommandError as exc:
        if not exc.says(*phrases):
            raise
        return False
    return True


def _must_find(kernel: Kernel, name: str) -> LinkInfo:
    link = kernel.link(name)
    if link is None:
        raise rules.vanished(name)
    return link


def _state_of(kernel: Kernel, link: LinkInfo) -> BridgeState:
    return BridgeState(name=link.name,
                       addresses=tuple(a.address for a in kernel.addresses(link.name)),
                       up=link.up, owned=is_locker_bridge(link.name, link.alias),
                       route_localnet=rules.route_localnet(link.name),
                       addresses6=tuple(kernel.addresses6(link.name)))
