"""The built-in ``netlink`` link backend: bridges and addresses through
rtnetlink (pyroute2), IPv4 forwarding through /proc.

Everything it does happens in the network namespace of the calling thread.
pyroute2 stays behind ``locker.link._rtnl``; this module drives the *Link*
hooks and turns failures into ``BackendError``. What it refuses and how it
chooses subnets it shares with every link backend (``locker.link.rules``,
``locker.subnets``). A bridge is Locker's when its interface alias is
``locker.names.bridge_alias(project)`` (set right after creating it); any
other bridge of that name is refused, except that ``ensure_bridge`` with
``adopt`` marks one that has no alias at all.
"""

from __future__ import annotations

import errno
import importlib.util
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from ipaddress import IPv4Network

from locker import faults, subnets
from locker.errors import BackendError
from locker.hookspecs import hookimpl
from locker.link import rules
from locker.model import Availability, Bridge, BridgeState
from locker.names import bridge_alias, is_locker_bridge

NETLINK_ROUTE = 0


class NetlinkBackend:
    """Link backend using pyroute2's ``IPRoute``; opens one rtnetlink socket
    per hook call, so it needs no state and no cleanup."""

    locker_api = 2  # the plugin API it is written for (locker.plugins.PLUGIN_API)

    @hookimpl
    def link_availability(self) -> Availability:
        # Every command asks this, so it must not import pyroute2 (0.1 s):
        # finding the package and opening a bare rtnetlink socket will do.
        from locker.link import _rtnl

        if importlib.util.find_spec("pyroute2") is None:
            return Availability(False, "pyroute2 is not installed: install python3-pyroute2 "
                                       "or `pip install pyroute2`.")
        version = _rtnl.pyroute2_version()
        try:
            socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE).close()
        except OSError as exc:
            return Availability(False, f"a netlink socket cannot be opened: {exc.strerror}.")
        return Availability(True, f"pyroute2 {version} talks to the kernel over rtnetlink.",
                            details={"pyroute2": version})

    @hookimpl
    def allocate_subnet(self, bridge: str, pool: IPv4Network,
                        reserved: Sequence[IPv4Network]) -> IPv4Network:
        rules.check_name(bridge)
        with _rtnl_session(f"choose a subnet for bridge {bridge!r}") as rtnl:
            link = rtnl.find_link(bridge)
            if link is not None:
                rules.require_bridge(link.name, link.kind)
                rules.require_not_foreign(link.name, link.alias)
                addresses = rtnl.ipv4_addresses(link.index)
                if addresses:
                    return addresses[0].network
            facts = rtnl.ipv4_address_facts(), rtnl.ipv4_routes()
        return subnets.allocate(*facts, reserved=reserved, pool=pool)

    @hookimpl
    def ensure_bridge(self, bridge: Bridge, adopt: bool) -> BridgeState:
        name = bridge.name
        rules.check_name(name)
        rules.check_derived(bridge)
        with _rtnl_session(f"set up bridge {name!r}") as rtnl:
            link = rtnl.find_link(name)
            created = False
            if link is None:
                # EEXIST: another program made it in between; it is not ours to undo.
                created = _tolerate(errno.EEXIST, lambda: rtnl.add_bridge(name))
                link = _must_find(rtnl, name)
            rules.require_bridge(link.name, link.kind)
            try:
                if created:  # the kernel ignores an alias sent with the creation
                    faults.point("bridge-created")
                    rtnl.set_alias(link.index, bridge_alias(bridge.project))
                elif adopt and not link.alias:
                    rtnl.set_alias(link.index, bridge_alias(bridge.project))
                else:
                    rules.require_owned(link.name, link.alias, bridge.project)
                if not rtnl.ipv4_addresses(link.index):
                    _tolerate(errno.EEXIST,
                              lambda: rtnl.add_ipv4_address(link.index, bridge.interface))
                if bridge.interface6 is not None:
                    rules.ensure_bridge_ipv6(name)
                    if bridge.interface6 not in rtnl.ipv6_addresses(link.index):
                        _tolerate(errno.EEXIST,
                                  lambda: rtnl.add_ipv6_address(link.index, bridge.interface6))
                if not link.up:
                    rtnl.set_up(link.index)
                rules.ensure_route_localnet(name)
            except BaseException as failure:
                if created:  # leave the kernel as it was
                    _undo_creation(rtnl, link.index, name, failure)
                raise
            return _state_of(rtnl, _must_find(rtnl, name))

    @hookimpl
    def subnet_conflicts(self, bridge: str) -> list[str]:
        rules.check_name(bridge)
        with _rtnl_session(f"check the subnet of bridge {bridge!r}") as rtnl:
            link = rtnl.find_link(bridge)
            if link is None or link.kind != "bridge":
                return []
            addresses = rtnl.ipv4_addresses(link.index)
            if not addresses:
                return []
            return subnets.conflicts(addresses[0].network, bridge,
                                     rtnl.ipv4_address_facts(), rtnl.ipv4_routes())

    @hookimpl
    def remove_bridge(self, name: str) -> None:
        rules.check_name(name)
        with _rtnl_session(f"remove bridge {name!r}") as rtnl:
            link = rtnl.find_link(name)
            if link is None:
                return
            rules.require_bridge(link.name, link.kind)
            rules.require_owned(link.name, link.alias)
            _tolerate(errno.ENODEV, lambda: rtnl.delete_link(link.index))

    @hookimpl
    def find_bridge(self, name: str) -> BridgeState | None:
        rules.check_name(name)
        with _rtnl_session(f"read bridge {name!r}") as rtnl:
            return _state(rtnl, name)

    @hookimpl
    def ensure_ip_forwarding(self, ipv6: bool) -> bool:
        return rules.ensure_forwarding(ipv6)


# ------------------------------------------------------------------ helpers


def _must_find(rtnl, name: str):
    link = rtnl.find_link(name)
    if link is None:
        raise rules.vanished(name)
    return link


def _state(rtnl, name: str) -> BridgeState | None:
    link = rtnl.find_link(name)
    if link is None or link.kind != "bridge":
        return None
    return _state_of(rtnl, link)


def _state_of(rtnl, link) -> BridgeState:
    return BridgeState(name=link.name, addresses=tuple(rtnl.ipv4_addresses(link.index)),
                       up=link.up, owned=is_locker_bridge(link.name, link.alias),
                       route_localnet=rules.route_localnet(link.name),
                       addresses6=tuple(rtnl.ipv6_addresses(link.index)))


def _tolerate(code: int, action: Callable[[], object]) -> bool:
    """Run ``action``; a kernel error ``code`` means it was already done.
    True when the action itself did it."""
    from locker.link._rtnl import RtnlError

    try:
        action()
    except RtnlError as exc:
        if exc.errno != code:
            raise
        return False
    return True


@contextmanager
def _rtnl_session(doing: str) -> Iterator:
    """An open ``Rtnl``; any failure inside becomes one BackendError saying
    what Locker was doing."""
    try:
        from locker.link._rtnl import Rtnl
    except ImportError as exc:  # pragma: no cover - _rtnl imports nothing optional
        raise BackendError(f"Cannot {doing}: {exc}.") from exc
    try:
        with Rtnl() as rtnl:
            yield rtnl
    except BackendError:
        raise
    except ImportError as exc:
        raise BackendError(
            f"Cannot {doing}: pyroute2 is not installed ({exc}); install python3-pyroute2 "
            "or `pip install pyroute2`, or choose the ipr2 link backend.") from exc
    except OSError as exc:
        raise BackendError(f"Cannot {doing}: {_explain(exc)}") from exc


def _explain(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EPERM, errno.EACCES):
        return f"{reason}; run Locker as root (it needs CAP_NET_ADMIN)."
    if exc.errno == errno.EOPNOTSUPP:
        return f"{reason}; this kernel lacks bridge support (load the bridge module)."
    return f"the kernel said: {reason}."


def _undo_creation(rtnl, index: int, name: str, failure: BaseException) -> None:
    """Delete the bridge this call created; when that fails too, say so
    instead of hiding it behind the first failure."""
    try:
        rtnl.delete_link(index)
    except OSError as undo:
        if isinstance(failure, Exception):
            raise rules.rollback_failed(name, failure, undo.strerror or undo) from failure
