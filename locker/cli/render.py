"""Text output of the commands that show something."""

from __future__ import annotations

from typing import TYPE_CHECKING

from locker.cli.output import Output
from locker.printable import printable

if TYPE_CHECKING:
    from locker.ops.status import Status

STATE_COLOURS = {"RUNNING": "green", "STOPPED": "red", "FROZEN": "yellow", "ABSENT": "dim",
                 "UNKNOWN": "red"}


def backends(out: Output, report: dict, details: bool = False) -> None:
    """The ``locker backends`` report; ``details`` (-v): also what each
    availability check found (``Availability.details``)."""
    for role, part in report.items():
        out.print(out.paint(f"{role} backends:", "bold"))
        chosen = part["selected"]["name"]
        for row in part["backends"]:
            mark = "*" if row["name"] == chosen else " "
            verdict = "can work here" if row["usable"] else "cannot work here"
            if row.get("needs_root"):
                verdict = "needs root"
            if row["usable"] and not row["auto"]:
                verdict += ", never picked automatically"
            out.print(f" {mark} {row['name']:<10} {row['distribution']:<20} "
                      f"{out.paint(verdict, 'green' if row['usable'] else 'yellow' if row.get('needs_root') else 'red')}: "
                      f"{row['reason']}")
            if details:
                for key, value in row.get("details", {}).items():
                    out.print(f"       {key}: {value}")
        if not part["backends"]:
            out.print("   (none installed)")
        selected = part["selected"]
        if selected["error"]:
            out.print(f"   this host would use: {selected['name'] or 'nothing'} "
                      f"({selected['how']}): {selected['error']}")
        else:
            out.print(f"   this host would use: {selected['name']} ({selected['how']})")


STATUS_COLOURS = {"in place": "green", "missing": "red", "partial": "yellow",
                  "stale": "yellow", "blocked": "red", "orphan": "yellow"}


def status(out: Output, result: Status) -> None:
    bridge = result.bridge
    if bridge is None:
        bridge_text = out.paint("absent", "dim")
    else:
        addresses = ", ".join(str(a) for a in bridge.addresses) or "no address"
        bridge_text = f"{addresses}, {'up' if bridge.up else 'down'}"
        if not bridge.owned:
            bridge_text += out.paint(" (not Locker's: it lacks Locker's alias)", "yellow")
    out.print(f"project {out.paint(result.project, 'bold')}  bridge {result.bridge_name}: "
              f"{bridge_text}")
    out.print()
    out.print(f"{'CONTAINER':<16} {'STATE':<8} {'ADDRESS':<16} LXC NAME")
    for c in result.containers:
        address = ", ".join(str(a) for a in c.addresses) or "-"
        colour = STATE_COLOURS.get(c.state, "red")
        out.print(f"{c.name:<16} {out.paint(f'{c.state:<8}', colour)} "
                  f"{address:<16} {c.lxc_name}")
        if c.problem:
            out.print(f"  {out.paint('could not read:', 'yellow')} {printable(c.problem)}")
    rules = [i for i in result.diff.items if i.kind != "container"]
    out.print()
    if rules:
        out.print("network, as found in the kernel:")
        for item in rules:
            _item(out, item)
    else:
        out.print("network, as found in the kernel: nothing (no container runs)")
    orphans = result.diff.of("container")
    if orphans:
        out.print()
        out.print("containers the project file does not list:")
        for item in orphans:
            _item(out, item)
    linked = [(c, h) for c in result.containers for h in c.hosts]
    if linked:
        out.print()
        out.print("names in the containers' /etc/hosts:")
        for container, entry in linked:
            forged = out.paint("  (marked as Locker's, but Locker did not write it)", "yellow") \
                if entry in container.not_lockers else ""
            out.print(f"  {container.name}: {entry.address} "
                      f"{printable(' '.join(entry.names))}{forged}")
    for blocker in result.blockers:
        out.print()
        out.print(out.paint(f"blocked: {printable(blocker.what)}; fix: {printable(blocker.fix)}",
                            "red"))
    for overlap in result.overlaps:
        out.print(out.paint(f"warning: the bridge's subnet overlaps {printable(overlap)}",
                            "yellow"))
    out.print()
    differing = len(result.diff.differences)
    out.print(out.paint("everything is in place", "green") if not differing else
              out.paint(f"{differing} item(s) differ from what the project wants", "yellow"))


def differences(out: Output, result: Status) -> None:
    """``status --check``: only what differs, one line each."""
    for item in result.diff.differences:
        _item(out, item)


def _item(out: Output, item) -> None:
    from locker.ops.status import describe

    mark = out.paint(f"{item.status:<8}", STATUS_COLOURS.get(item.status, "bold"))
    line = f"  {mark} {item.kind:<8} {item.subject}: {printable(describe(item))}"
    if item.differs:
        why = f"{item.reason}; " if item.reason else ""
        line += out.paint(f"  ({why}fix: {item.fix})", "dim")
    out.print(line)


def projects(out: Output, summaries) -> None:
    """``locker ls``."""
    if not summaries:
        out.print("no projects in the host state")
        return
    out.print(f"{'PROJECT':<16} {'CONTAINERS':<10} {'NETWORK':<10} {'BRIDGE':<16} "
              f"{'SUBNET':<15} {'BACKENDS':<18} FILE")
    for s in summaries:
        r = s.record
        network = ("complete" if s.complete else "incomplete" if s.complete is False else "?")
        file = r.file + ("" if s.file_exists else out.paint(" (gone)", "red"))
        backends = f"{r.firewall or '-'}/{r.link or '-'}"
        counts = "?" if s.problem and not s.total else f"{s.running}/{s.total}"
        out.print(f"{r.project:<16} {counts:<10} {network:<10} "
                  f"{r.bridge or '-':<16} {str(r.subnet or '-'):<15} {backends:<18} {file}")
        if s.problem:
            out.print(f"  {out.paint(printable(s.problem), 'yellow')}")


def summary_to_json(s) -> dict:
    r = s.record
    return {"project": r.project, "file": r.file, "file_exists": s.file_exists,
            "bridge": r.bridge, "subnet": str(r.subnet) if r.subnet else None,
            "backends": {"firewall": r.firewall, "link": r.link},
            "containers": {"running": s.running, "total": s.total},
            "rules_complete": s.complete, "problem": s.problem}


def restored(out: Output, results, dry_run: bool) -> None:
    if not results:
        out.say("restore: no projects in the host state")
    for r in results:
        if r.error:
            out.say(f"{r.project}: restore failed: {r.error}")
        elif r.skipped:
            out.say(f"{r.project}: skipped ({r.skipped})")
        else:
            verb = "would make" if dry_run else "made"
            out.say(f"{r.project}: restored ({verb} {r.changes} change(s))")


def recorded_status(out: Output, result) -> None:
    """``status`` without root."""
    record = result.record
    out.print(f"project {out.paint(result.project, 'bold')}  (not root: the containers' "
              f"states as LXC shows them to you, the network as Locker last recorded it)")
    out.print()
    out.print(f"{'CONTAINER':<16} STATE")
    for name, state in result.containers:
        out.print(f"{name:<16} {out.paint(state, STATE_COLOURS.get(state, 'red'))}")
    out.print()
    if record is None or record.subnet is None:
        out.print("recorded network: none")
        return
    out.print(f"recorded network: bridge {record.bridge} {record.subnet}, backends "
              f"{record.firewall or '-'}/{record.link or '-'}")
    for forward in record.forwards:
        out.print(f"  forward  {forward.container}: {forward}")
    out.print(out.paint("the rules in the kernel can only be read as root (sudo locker status)",
                        "dim"))
