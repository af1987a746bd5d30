"""Reading and rewriting an LXC container's ``config`` file, as pure
functions on its text.

Locker writes everything it manages into one marked block at the end of the
file and replaces that block on every ``configure``. Outside the block it
removes only the lines it owns by key: every network key (a Locker
container has exactly the one veth Locker configures) and, when Locker sets
the hostname, ``lxc.uts.name``. Everything else the template wrote (its own
mount entries, capabilities, rootfs, ...) is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from locker.errors import ConfigError
from locker.project import CgroupSetting, VolumeSpec

BEGIN = "# >>> locker: this block is rewritten by Locker; edit the project file instead"
END = "# <<< locker"

_NET_KEY = re.compile(r"^\s*lxc\.net(work)?\.")
_UTS_KEY = re.compile(r"^\s*lxc\.uts\.name\s*=")


def config_value(text: str, key: str) -> str | None:
    """The last value of ``key`` in config text (LXC lets a later line win),
    without surrounding quotes; None if the key is absent."""
    found = None
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == key:
            found = v.strip().strip('"')
    return found


def read_address(text: str) -> IPv4Interface | None:
    """The static IPv4 address of the first network device, if any."""
    value = config_value(text, "lxc.net.0.ipv4.address")
    if not value:
        return None
    try:
        return IPv4Interface(value.split()[0])  # "ADDR/LEN [BROADCAST]"
    except ValueError:
        return None


def rootfs_dir(text: str) -> str | None:
    """The root file system's directory for the ``dir`` storage backend
    (``lxc.rootfs.path = dir:/path`` or a plain absolute path), else None."""
    value = config_value(text, "lxc.rootfs.path")
    if not value:
        return None
    if value.startswith("dir:"):
        value = value[len("dir:"):]
    return value if value.startswith("/") else None


def hwaddr_for(address: IPv4Interface) -> str:
    """A stable MAC address derived from the container's IPv4 address, in
    LXC's 00:16:3e prefix, so that neighbours' ARP caches stay valid across
    restarts. Unique on a project's bridge, since addresses are."""
    _, b, c, d = address.ip.packed
    return f"00:16:3e:{b:02x}:{c:02x}:{d:02x}"


def render_block(bridge: str, address: IPv4Interface, gateway: IPv4Address,
                 mounts: Sequence[VolumeSpec] = (),
                 cgroup: Sequence[CgroupSetting] = (),
                 hostname: str | None = None, cgroup2: bool = False,
                 console_log: str | None = None, address6: IPv6Interface | None = None,
                 gateway6: IPv6Address | None = None) -> list[str]:
    """The lines of Locker's block, markers included. ``console_log``: the
    file LXC writes the container's console to (``locker logs``).
    ``address6``, ``gateway6``: the container's IPv6 address and the
    bridge's (a project with IPv6).

    ``cgroup2`` selects ``lxc.cgroup2.KEY`` (unified hierarchy) instead of
    ``lxc.cgroup.KEY`` (v1 or hybrid hosts). Mounts and cgroup settings
    are valid by their types (``locker.project``); raises ConfigError for
    a hostname or log path that would not stay on its line.
    """
    lines = [BEGIN]
    if hostname is not None:
        _check_single_line("hostname", hostname)
        lines.append(f"lxc.uts.name = {hostname}")
    if console_log is not None:
        _check_single_line("console log", console_log)
        lines.append(f"lxc.console.logfile = {console_log}")
    lines += [
        "lxc.net.0.type = veth",
        f"lxc.net.0.link = {bridge}",
        "lxc.net.0.flags = up",
        "lxc.net.0.name = eth0",
        f"lxc.net.0.hwaddr = {hwaddr_for(address)}",
        # without the broadcast address LXC sets 0.0.0.255 on a /24
        f"lxc.net.0.ipv4.address = {address.with_prefixlen} {address.network.broadcast_address}",
        f"lxc.net.0.ipv4.gateway = {gateway}",
    ]
    if address6 is not None:
        lines.append(f"lxc.net.0.ipv6.address = {address6.with_prefixlen}")
        if gateway6 is not None:
            lines.append(f"lxc.net.0.ipv6.gateway = {gateway6}")
    for mount in mounts:
        lines.append(f"lxc.mount.entry = {mount_entry(mount)}")
    prefix = "lxc.cgroup2" if cgroup2 else "lxc.cgroup"
    for setting in cgroup:
        lines.append(f"{prefix}.{setting.key} = {setting.value.strip()}")
    lines.append(END)
    return lines


def mount_entry(mount: VolumeSpec) -> str:
    """An fstab-style bind mount entry, the target relative to the rootfs."""
    return f"{mount.host_dir} {mount.container_dir.strip('/')} none bind,create=dir 0 0"


def rewrite(text: str, block: Sequence[str], replace_hostname: bool) -> str:
    """``text`` with Locker's previous block and the foreign lines Locker
    owns removed, and ``block`` appended."""
    kept: list[str] = []
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# >>> locker"):
            inside = True
        elif inside:
            inside = stripped != END
        elif _NET_KEY.match(line) or (replace_hostname and _UTS_KEY.match(line)):
            continue
        else:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join([*kept, "", *block]) + "\n"


def _check_single_line(what: str, value: str) -> None:
    if not value.strip() or "\n" in value or "\r" in value:
        raise ConfigError(f"The {what} {value!r} must be one non-empty line.")
