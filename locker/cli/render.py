"""Text output of the commands that show something."""

from __future__ import annotations

from typing import TYPE_CHECKING

from locker.cli.output import Output

if TYPE_CHECKING:
    from locker.ops.status import Status
    from locker.planner import Changes

STATE_COLOURS = {"RUNNING": "green", "STOPPED": "red", "FROZEN": "yellow", "ABSENT": "dim"}


def backends(out: Output, report: dict) -> None:
    for role, part in report.items():
        out.print(out.paint(f"{role} backends:", "bold"))
        chosen = part["selected"]["name"]
        for row in part["backends"]:
            mark = "*" if row["name"] == chosen else " "
            verdict = "can work here" if row["usable"] else "cannot work here"
            if row["usable"] and not row["auto"]:
                verdict += ", never picked automatically"
            out.print(f" {mark} {row['name']:<10} {row['distribution']:<18} "
                      f"{out.paint(verdict, 'green' if row['usable'] else 'red')}: "
                      f"{row['reason']}")
        if not part["backends"]:
            out.print("   (none installed)")
        selected = part["selected"]
        if selected["error"]:
            out.print(f"   this host would use: {selected['name'] or 'nothing'} "
                      f"({selected['how']}): {selected['error']}")
        else:
            out.print(f"   this host would use: {selected['name']} ({selected['how']})")


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
        out.print(f"{c.name:<16} {out.paint(f'{c.state:<8}', STATE_COLOURS[c.state])} "
                  f"{address:<16} {c.lxc_name}")
    rules = result.rules
    out.print()
    out.print("rules found in the kernel:" if rules.jumps or rules.nat or rules.forwards
              or rules.links else "rules found in the kernel: none")
    for b in sorted(rules.nat, key=lambda b: b.name):
        out.print(f"  nat      {b.network} via {b.name}: masquerade, forward out and replies")
    for f in sorted(rules.forwards, key=lambda f: f.sort_key()):
        out.print(f"  forward  {f.container}: {f}{_stale(out, result, f, 'ports')}")
    for k in sorted(rules.links, key=lambda k: k.sort_key()):
        out.print(f"  link     {k}{_stale(out, result, k, 'links')}")
    linked = [(c.name, h) for c in result.containers for h in c.hosts]
    if linked:
        out.print()
        out.print("names in the containers' /etc/hosts:")
        for name, entry in linked:
            out.print(f"  {name}: {entry.address} {' '.join(entry.names)}")


def _stale(out: Output, result: Status, rule, command: str) -> str:
    if not result.is_stale(rule):
        return ""
    return out.paint(f"  (stale: its container does not run with this address; "
                     f"`locker {command}` removes it)", "yellow")


def changes(out: Output, what: str, todo: Changes) -> None:
    if not todo:
        out.say(f"{what}: nothing to change")
        return
    for value in todo.remove:
        out.say(f"removed {what[:-1]}: {value}")
    for value in todo.add:
        out.say(f"added {what[:-1]}: {value}")
