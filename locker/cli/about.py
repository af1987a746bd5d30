"""What Locker says about itself: ``--version`` (the core and every
installed backend and observer, with its version and distribution),
``locker plugins`` (the same list with each plugin's entry point, or as
JSON) and
``locker completion SHELL`` (the shell completion scripts shipped in
``locker/completions/``, generated from the parser by ``scripts/gen-docs``).

Only argparse is imported here at start-up: the listing reads entry-point
metadata when ``--version`` is given, and imports no plugin.
"""

from __future__ import annotations

import argparse

from locker.cli.registry import JSON, command, no_arguments

#: Shell -> the file in locker/completions/ (the names each shell's vendor
#: directory expects).
COMPLETIONS = {"bash": "locker.bash", "zsh": "_locker", "fish": "locker.fish"}
#: Entry-point group -> how --version titles it.
GROUPS = {"locker.firewall": "firewall backends", "locker.link": "link backends",
          "locker.plugins": "observers"}
#: Entry-point group -> its key in ``locker plugins --json``.
JSON_KEYS = {"locker.firewall": "firewall", "locker.link": "link",
             "locker.plugins": "observers"}
CORE_DISTRIBUTION = "lxc-locker"


def installed_plugins() -> dict[str, list[dict[str, str]]]:
    """Entry-point group -> each plugin installed in it (name, distribution,
    version, entry point), sorted by name. Imports no plugin."""
    from importlib.metadata import entry_points

    listing = {}
    for group in GROUPS:
        found = {(ep.name, ep.dist.name if ep.dist else "?",
                  ep.dist.version if ep.dist else "?", getattr(ep, "value", "?"))
                 for ep in entry_points(group=group)}
        listing[group] = [{"name": n, "distribution": d, "version": v, "entry_point": e}
                          for n, d, v, e in sorted(found)]
    return listing


def version_text() -> str:
    """The core's version, then each installed plugin by group: name,
    distribution and its version. Imports no plugin."""
    from locker import __version__

    lines = [f"locker {__version__} ({CORE_DISTRIBUTION})"]
    for group, found in installed_plugins().items():
        lines.append(f"{GROUPS[group]}:" + ("" if found else " none"))
        width = max((len(p["name"]) for p in found), default=0)
        lines += [f"  {p['name']:<{width}}  {p['distribution']} {p['version']}" for p in found]
    return "\n".join(lines)


@command("plugins",
         "list every installed plugin (backends and observers) with its distribution and version",
         arguments=no_arguments, options=(JSON,), root=False)
def cmd_plugins(args, out) -> None:
    """``locker plugins``: every installed plugin, backends and observers,
    with its distribution, version and entry point."""
    import json

    listing = installed_plugins()
    if args.json:
        out.print(json.dumps({JSON_KEYS[g]: found for g, found in listing.items()}, indent=2))
        return
    for group, found in listing.items():
        out.print(out.paint(f"{GROUPS[group]}:", "bold") + ("" if found else " none"))
        width = max((len(p["name"]) for p in found), default=0)
        dist_width = max((len(f"{p['distribution']} {p['version']}") for p in found), default=0)
        for p in found:
            release = f"{p['distribution']} {p['version']}"
            out.print(f"  {p['name']:<{width}}  {release:<{dist_width}}  {p['entry_point']}")


class VersionAction(argparse.Action):
    """``--version``: like argparse's, but the text is made only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the version of Locker and of every installed plugin, and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        parser._print_message(version_text() + "\n", sys.stdout)
        parser.exit()


def completion_script(shell: str) -> str:
    from importlib.resources import files

    return (files("locker") / "completions" / COMPLETIONS[shell]).read_text(encoding="utf-8")


def shell(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="SHELL",
                        help="bash, zsh or fish")


@command("completion", "print the completion script for bash, zsh or fish", arguments=shell,
         root=False)
def cmd_completion(args, out) -> None:
    """``locker completion SHELL``: print the completion script, to be saved
    where the shell looks (see locker(1), COMPLETION)."""
    out.stdout.write(completion_script(args.shell))
