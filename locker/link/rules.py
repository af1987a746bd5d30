"""The rules of the *Link* hooks that every link backend applies alike,
with the messages an administrator sees: which names an interface may
have, which bridges are Locker's, and IPv4 forwarding through /proc.

A backend reads the kernel its own way and calls these with plain values
(names, kinds, aliases), so that ``netlink``, ``ipr2`` and third-party
backends refuse the same things in the same words.
"""

from __future__ import annotations

from locker.errors import BackendError
from locker.model import Bridge
from locker.names import BRIDGE_PREFIX, IFNAME_MAX, bridge_alias, bridge_name, is_locker_bridge

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
ROUTE_LOCALNET = "/proc/sys/net/ipv4/conf/{}/route_localnet"
IPV6_CONF = "/proc/sys/net/ipv6/conf/{}/{}"


def check_name(name: str) -> None:
    """Refuse a name Linux cannot give an interface."""
    if not name or len(name.encode()) > IFNAME_MAX:
        raise BackendError(
            f"Bridge name {name!r} has {len(name.encode())} characters but Linux allows "
            f"1 to {IFNAME_MAX}: use locker.names.bridge_name() to derive a short one.")
    if "/" in name or ":" in name or any(c.isspace() for c in name) or name in (".", ".."):
        raise BackendError(
            f"Bridge name {name!r} is not a valid interface name: Linux refuses '/', ':', "
            "whitespace, '.' and '..'; use locker.names.bridge_name() to derive one.")


def check_derived(bridge: Bridge) -> None:
    """Refuse a bridge whose name is not the one its project gets."""
    expected = bridge_name(bridge.project)
    if bridge.name != expected:
        raise BackendError(
            f"Bridge {bridge.name!r} is not the name Locker gives project {bridge.project!r}'s "
            f"bridge ({expected!r}): derive it with locker.names.bridge_name().")


def require_bridge(name: str, kind: str | None) -> None:
    """Refuse an interface that is not a bridge (``kind`` is the link's
    kind, ``IFLA_INFO_KIND``; None for a plain device)."""
    if kind != "bridge":
        what = f"a {kind} interface" if kind else "an interface"
        raise BackendError(
            f"{name!r} is {what}, not a bridge: Locker will not touch it; rename or "
            "remove that interface, or choose another project name.")


def require_owned(name: str, alias: str | None, project: str | None = None) -> None:
    """Refuse a bridge that does not carry Locker's mark for its name.
    ``project`` names the mark in the message where the caller knows it."""
    if is_locker_bridge(name, alias):
        return
    found = f"its alias is {alias!r}" if alias else "it has no alias"
    if project is None:  # a plain name tells its project; a short form does not
        plain = name.removeprefix(BRIDGE_PREFIX)
        project = plain if bridge_name(plain) == name else "<project>"
    mark = bridge_alias(project)
    raise BackendError(
        f"A bridge named {name!r} exists that Locker did not create ({found}, Locker "
        f"marks its own {mark!r}): Locker will not use or remove it; remove or rename it, "
        f"or choose another project name (if an earlier Locker made it, mark it with "
        f"`ip link set dev {name} alias {mark}`).")


def require_not_foreign(name: str, alias: str | None) -> None:
    """What ``allocate_subnet`` refuses: a bridge with an alias that is not
    its mark. A bridge without alias may still be adopted."""
    if alias:
        require_owned(name, alias)


def vanished(name: str) -> BackendError:
    return BackendError(
        f"Bridge {name!r} vanished while Locker set it up: check whether another "
        "program deletes interfaces, then run the command again.")


def ipv4_forwarding_off() -> bool:
    """Whether ``net.ipv4.ip_forward`` is off (what a dry run asks instead
    of turning it on)."""
    try:
        with open(IP_FORWARD) as file:
            return file.read().strip() == "0"
    except OSError:
        return False


def ensure_ipv4_forwarding() -> bool:
    """Turn on ``net.ipv4.ip_forward`` of the calling thread's network
    namespace; True when it was off."""
    return _switch_on(IP_FORWARD, "IPv4 forwarding", "net.ipv4.ip_forward=1")


def ensure_ipv6_forwarding() -> bool:
    """Turn on ``net.ipv6.conf.all.forwarding`` of the calling thread's
    network namespace; True when it was off. Its ``accept_ra`` settings are
    left alone (see ``ra_interfaces``)."""
    return _switch_on(IPV6_CONF.format("all", "forwarding"), "IPv6 forwarding",
                      "net.ipv6.conf.all.forwarding=1", " (is IPv6 disabled on this host?)")


def _switch_on(path: str, what: str, setting: str, hint: str = "") -> bool:
    """Write 1 into the sysctl file ``path`` where it holds 0; True when it did."""
    try:
        with open(path, "r+") as file:
            if file.read().strip() != "0":
                return False
            file.seek(0)
            file.write("1\n")
    except OSError as exc:
        raise BackendError(
            f"Cannot turn on {what} through {path} ({exc.strerror or exc}): run Locker as "
            f"root, or set {setting} with sysctl yourself{hint}.") from exc
    return True


def ensure_forwarding(ipv6: bool) -> bool:
    """IPv4 forwarding, and IPv6 forwarding with ``ipv6``; True when one was off."""
    turned = ensure_ipv4_forwarding()
    if ipv6:
        turned = ensure_ipv6_forwarding() or turned
    return turned


def ra_interfaces() -> list[str]:
    """The interfaces with ``accept_ra=1`` (not ``lo``, not ``all`` or
    ``default``): with IPv6 forwarding on, the kernel ignores router
    advertisements on them (``accept_ra=2`` takes them anyway), so a host
    that gets its own address or route that way loses it at renewal."""
    import os

    found = []
    try:
        names = sorted(os.listdir("/proc/sys/net/ipv6/conf"))
    except OSError:
        return []
    for name in names:
        if name in ("all", "default", "lo"):
            continue
        try:
            with open(IPV6_CONF.format(name, "accept_ra")) as file:
                if file.read().strip() == "1":
                    found.append(name)
        except OSError:
            continue
    return found


def ensure_bridge_ipv6(name: str) -> None:
    """``disable_ipv6=0`` and ``accept_ra=0`` on the bridge ``name`` only,
    before it gets its IPv6 address."""
    for key, value in (("disable_ipv6", "0"), ("accept_ra", "0")):
        path = IPV6_CONF.format(name, key)
        try:
            with open(path, "r+") as file:
                if file.read().strip() == value:
                    continue
                file.seek(0)
                file.write(value + "\n")
        except OSError as exc:
            raise BackendError(
                f"Cannot set {key}={value} on bridge {name!r} through {path} "
                f"({exc.strerror or exc}): run Locker as root; is IPv6 disabled on this "
                "host (ipv6.disable=1)? A project with ipv6: true needs it.") from exc


def route_localnet(name: str) -> bool:
    """Whether ``net.ipv4.conf.NAME.route_localnet`` is on (True when it
    cannot be read: nothing to repair that Locker could)."""
    try:
        with open(ROUTE_LOCALNET.format(name)) as file:
            return file.read().strip() != "0"
    except OSError:
        return True


def ensure_route_localnet(name: str) -> None:
    """Turn on ``net.ipv4.conf.NAME.route_localnet`` for the bridge ``name``
    only (never ``all`` or ``default``): packets from 127.0.0.0/8 may then
    leave through it, which forwards reached at 127.0.0.1 from the host
    need. The firewall backend's guard rule drops what would abuse it
    (connections from the bridge to 127.0.0.0/8, CVE-2020-8558)."""
    path = ROUTE_LOCALNET.format(name)
    try:
        with open(path, "r+") as file:
            if file.read().strip() != "0":
                return
            file.seek(0)
            file.write("1\n")
    except OSError as exc:
        raise BackendError(
            f"Cannot turn on route_localnet of bridge {name!r} through {path} "
            f"({exc.strerror or exc}): run Locker as root.") from exc


def rollback_failed(name: str, failure: BaseException, undo: BaseException) -> BackendError:
    """The error when deleting a half-made bridge failed after ``failure``:
    both causes, and the command that finishes the job."""
    return BackendError(f"Setting up bridge {name!r} failed ({failure}), and deleting the "
                        f"half-made bridge failed too ({undo}); delete it with "
                        f"`ip link delete {name}`.")
