"""What Locker says about itself: ``--version`` (the core and every
installed backend and observer, with its version and distribution) and
``locker completion SHELL`` (the shell completion scripts shipped in
``locker/completions/``, generated from the parser by ``scripts/gen-docs``).

Only argparse is imported here at start-up: the listing reads entry-point
metadata when ``--version`` is given, and imports no plugin.
"""

from __future__ import annotations

import argparse

#: Shell -> the file in locker/completions/ (the names each shell's vendor
#: directory expects).
COMPLETIONS = {"bash": "locker.bash", "zsh": "_locker", "fish": "locker.fish"}
#: Entry-point group -> how --version titles it.
GROUPS = {"locker.firewall": "firewall backends", "locker.link": "link backends",
          "locker.plugins": "observers"}
CORE_DISTRIBUTION = "lxc-locker"


def version_text() -> str:
    """The core's version, then each installed plugin by group: name,
    distribution and its version. Imports no plugin."""
    from importlib.metadata import entry_points

    from locker import __version__

    lines = [f"locker {__version__} ({CORE_DISTRIBUTION})"]
    for group, title in GROUPS.items():
        found = sorted({(ep.name, ep.dist.name if ep.dist else "?",
                         ep.dist.version if ep.dist else "?")
                        for ep in entry_points(group=group)})
        lines.append(f"{title}:" + ("" if found else " none"))
        width = max((len(name) for name, _, _ in found), default=0)
        lines += [f"  {name:<{width}}  {dist} {version}" for name, dist, version in found]
    return "\n".join(lines)


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


def cmd_completion(args, out) -> None:
    """``locker completion SHELL``: print the completion script, to be saved
    where the shell looks (see locker(1), COMPLETION)."""
    out.stdout.write(completion_script(args.shell))
