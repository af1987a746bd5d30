"""The built-in ``netlink`` link backend: bridges and addresses through
rtnetlink (pyroute2), IPv4 forwarding through /proc.

Everything it does happens in the network namespace of the calling thread.
pyroute2 stays behind ``locker.link._rtnl``; this module holds the rules of
the *Link* hooks and turns failures into ``BackendError``. A bridge is
Locker's when its interface alias is ``locker.names.bridge_alias(project)``
(set right after creating it); any other bridge of that name is refused.
"""

from __future__ import annotations

import errno
import importlib.util
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from ipaddress import IPv4Network

from locker.errors import BackendError
from locker.hookspecs import hookimpl
from locker.model import Availability, Bridge, BridgeState
from locker.names import BRIDGE_PREFIX, IFNAME_MAX, bridge_alias, bridge_name, is_locker_bridge
from locker.subnets import first_free

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
NETLINK_ROUTE = 0

class NetlinkBackend:
    """Link backend using pyroute2's ``IPRoute``; opens one rtnetlink socket
    per hook call, so it needs no state and no cleanup."""

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
    def allocate_subnet(self, bridge: str) -> IPv4Network:
        _check_name(bridge)
        with _rtnl_session(f"choose a subnet for bridge {bridge!r}") as rtnl:
            link = rtnl.find_link(bridge)
            if link is not None:
                _require_bridge(link)
                _require_owned(link)
                addresses = rtnl.ipv4_addresses(link.index)
                if addresses:
                    return addresses[0].network
            used = rtnl.ipv4_address_networks() + rtnl.ipv4_route_destinations()
        return first_free(used)

    @hookimpl
    def ensure_bridge(self, bridge: Bridge) -> BridgeState:
        name = bridge.name
        _check_name(name)
        _check_derived(bridge)
        with _rtnl_session(f"set up bridge {name!r}") as rtnl:
            link = rtnl.find_link(name)
            created = False
            if link is None:
                # EEXIST: another program made it in between; it is not ours to undo.
                created = _tolerate(errno.EEXIST, lambda: rtnl.add_bridge(name))
                link = _must_find(rtnl, name)
            _require_bridge(link)
            try:
                if created:  # the kernel ignores an alias sent with the creation
                    rtnl.set_alias(link.index, bridge_alias(bridge.project))
                else:
                    _require_owned(link, bridge.project)
                if not rtnl.ipv4_addresses(link.index):
                    _tolerate(errno.EEXIST,
                              lambda: rtnl.add_ipv4_address(link.index, bridge.interface))
                if not link.up:
                    rtnl.set_up(link.index)
            except BaseException:
                if created:  # leave the kernel as it was
                    with suppress(OSError):
                        rtnl.delete_link(link.index)
                raise
            return _state_of(rtnl, _must_find(rtnl, name))

    @hookimpl
    def remove_bridge(self, name: str) -> None:
        _check_name(name)
        with _rtnl_session(f"remove bridge {name!r}") as rtnl:
            link = rtnl.find_link(name)
            if link is None:
                return
            _require_bridge(link)
            _require_owned(link)
            _tolerate(errno.ENODEV, lambda: rtnl.delete_link(link.index))

    @hookimpl
    def find_bridge(self, name: str) -> BridgeState | None:
        _check_name(name)
        with _rtnl_session(f"read bridge {name!r}") as rtnl:
            return _state(rtnl, name)

    @hookimpl
    def ensure_ip_forwarding(self) -> bool:
        try:
            with open(IP_FORWARD, "r+") as file:
                if file.read().strip() != "0":
                    return False
                file.seek(0)
                file.write("1\n")
        except OSError as exc:
            raise BackendError(
                f"Cannot turn on IPv4 forwarding through {IP_FORWARD} "
                f"({exc.strerror or exc}): run Locker as root, or set "
                "net.ipv4.ip_forward=1 with sysctl yourself.") from exc
        return True


# ------------------------------------------------------------------ helpers


def _check_name(name: str) -> None:
    if not name or len(name.encode()) > IFNAME_MAX:
        raise BackendError(
            f"Bridge name {name!r} has {len(name.encode())} characters but Linux allows "
            f"1 to {IFNAME_MAX}: use locker.names.bridge_name() to derive a short one.")
    if "/" in name or ":" in name or any(c.isspace() for c in name) or name in (".", ".."):
        raise BackendError(
            f"Bridge name {name!r} is not a valid interface name: Linux refuses '/', ':', "
            "whitespace, '.' and '..'; use locker.names.bridge_name() to derive one.")


def _require_bridge(link) -> None:
    if link.kind != "bridge":
        kind = f"a {link.kind} interface" if link.kind else "an interface"
        raise BackendError(
            f"{link.name!r} is {kind}, not a bridge: Locker will not touch it; rename or "
            "remove that interface, or choose another project name.")


def _check_derived(bridge: Bridge) -> None:
    expected = bridge_name(bridge.project)
    if bridge.name != expected:
        raise BackendError(
            f"Bridge {bridge.name!r} is not the name Locker gives project {bridge.project!r}'s "
            f"bridge ({expected!r}): derive it with locker.names.bridge_name().")


def _require_owned(link, project: str | None = None) -> None:
    """Refuse a bridge that does not carry Locker's mark for its name."""
    if is_locker_bridge(link.name, link.alias):
        return
    found = f"its alias is {link.alias!r}" if link.alias else "it has no alias"
    if project is None:  # a plain name tells its project; a short form does not
        plain = link.name.removeprefix(BRIDGE_PREFIX)
        project = plain if bridge_name(plain) == link.name else "<project>"
    mark = bridge_alias(project)
    raise BackendError(
        f"A bridge named {link.name!r} exists that Locker did not create ({found}, Locker "
        f"marks its own {mark!r}): Locker will not use or remove it; remove or rename it, "
        f"or choose another project name (if an earlier Locker made it, mark it with "
        f"`ip link set dev {link.name} alias {mark}`).")


def _must_find(rtnl, name: str):
    link = rtnl.find_link(name)
    if link is None:
        raise BackendError(
            f"Bridge {name!r} vanished while Locker set it up: check whether another "
            "program deletes interfaces, then run the command again.")
    return link


def _state(rtnl, name: str) -> BridgeState | None:
    link = rtnl.find_link(name)
    if link is None or link.kind != "bridge":
        return None
    return _state_of(rtnl, link)


def _state_of(rtnl, link) -> BridgeState:
    return BridgeState(name=link.name, addresses=tuple(rtnl.ipv4_addresses(link.index)),
                       up=link.up, owned=is_locker_bridge(link.name, link.alias))


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
