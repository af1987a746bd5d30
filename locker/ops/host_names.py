"""The project's containers in the host's own /etc/hosts (``start
--add-hosts``), as ``NAME.PROJECT`` and their fqdn, on lines marked
``# locker:PROJECT``; every other line is kept as it is."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address

from locker import planner
from locker.context import Context
from locker.journal import Change
from locker.runtime.rootfs import atomic_write


def write(ctx: Context, ips: Mapping[str, IPv4Address]) -> None:
    """Replace the project's lines with one per container in ``ips``."""
    lines = []
    for name, ip in ips.items():
        fqdn = ctx.project.container(name).fqdn
        names = " ".join(n for n in (fqdn, f"{name}.{ctx.project.name}") if n)
        lines.append(f"{ip}\t{names}\t{_mark(ctx)}")
    _replace(ctx, lines)


def remove(ctx: Context) -> None:
    """Drop the project's lines (``cleanup``)."""
    _replace(ctx, [])


def _mark(ctx: Context) -> str:
    return f"{planner.HOSTS_MARK}:{ctx.project.name}"


def _replace(ctx: Context, lines: list[str]) -> None:
    """Under the host lock and atomically, so that two projects at once keep
    each other's lines; a file that would not change is not rewritten."""
    with ctx.lock():
        try:
            current = ctx.host_hosts.read_text()
        except FileNotFoundError:
            current = ""
        kept = [line for line in current.splitlines() if not line.endswith(_mark(ctx))]
        wanted = "\n".join(kept + lines) + "\n"
        if wanted != current and (lines or current):
            ctx.journal.change(Change(ctx.project.name, "rewrote", "the host's hosts file",
                                      f"({len(lines)} line(s) of the project)"),
                               lambda: atomic_write(ctx.host_hosts, wanted))
