"""The project's containers in the host's own /etc/hosts (``start
--add-hosts``), as ``NAME.PROJECT`` and their fqdn, on lines marked
``# locker:PROJECT``; every other line is kept as it is.

The file is replaced atomically (a new file renamed over it), keeping its
mode and owner. Where that is impossible, because /etc/hosts is a bind
mount (``ip netns exec`` with /etc/netns/NS/hosts, containers, some CI
runners: rename gives EBUSY) or its directory is read-only, it is
rewritten in place, still under the host lock, so no other Locker
command's lines are lost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from ipaddress import IPv4Address

from locker import planner
from locker.context import Context
from locker.errors import LockerError
from locker.journal import Change
from locker.runtime.rootfs import atomic_write


def write(ctx: Context, ips: Mapping[str, IPv4Address]) -> None:
    """Replace the project's lines with one per container in ``ips``."""
    _replace(ctx, planner.host_entries(ctx.project, ips))


def remove(ctx: Context) -> None:
    """Drop the project's lines (``cleanup``)."""
    _replace(ctx, [])


def _replace(ctx: Context, entries: list[planner.HostsEntry]) -> None:
    """Under the host lock and atomically, so that two projects at once keep
    each other's lines; a file that would not change is not rewritten."""
    with ctx.lock():
        try:
            current = ctx.host_hosts.read_text()
        except FileNotFoundError:
            current = ""
        wanted = planner.hosts_file(current, entries, planner.host_hosts_mark(ctx.project.name),
                                    localhost=False)
        if wanted != current and (entries or current):
            ctx.journal.change(Change(ctx.project.name, "rewrote", "the host's hosts file",
                                      f"({len(entries)} line(s) of the project)"),
                               lambda: write_hosts(ctx.host_hosts, wanted))


def write_hosts(path: Path, text: str) -> None:
    """Replace the file's content: atomically where it can be renamed over,
    else in place."""
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    try:
        if info is None:
            atomic_write(path, text)
        else:
            atomic_write(path, text, info.st_mode & 0o7777, info.st_uid, info.st_gid)
        return
    except OSError as err:
        if info is None:
            raise LockerError(f"Cannot write {path}: {err.strerror}.") from err
        atomic_error = err
    try:
        with open(path, "r+", encoding="utf-8") as f:
            f.write(text)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise LockerError(f"Cannot write {path}: {atomic_error.strerror} when replacing it, "
                          f"{err.strerror} when rewriting it in place.") from err
