"""``locker``: the command line.

Only argparse is imported at start-up; everything else when a command runs,
so ``locker --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

COMMANDS = {
    "create": "create containers from their template, clone or download",
    "start": "ensure the bridge and rules, start containers, add their forwards and links",
    "plan": "show what start would change, and change nothing (start --dry-run)",
    "stop": "stop containers and remove their forwards and links",
    "reboot": "stop containers if running, then start them",
    "rm": "delete stopped containers",
    "status": "show what is really there and what differs from the project file",
    "ports": "repair the port forwards of running containers: add, complete, remove stale",
    "rmports": "remove the port forwards of containers",
    "links": "repair the links of running containers: add, complete, remove stale",
    "rmlinks": "remove the links of containers",
    "cgroup": "apply the cgroup settings to running containers",
    "freeze": "freeze containers",
    "unfreeze": "thaw frozen containers",
    "cleanup": "stop all containers, remove the project's rules and its bridge",
    "validate": "check the project file and report every problem",
    "backends": "list the installed backends and which ones this host would use",
    "ls": "list every project of this host, from Locker's host state",
    "restore": "re-apply the network of running projects after a firewall reload or reboot",
    "completion": "print the completion script for bash, zsh or fish",
}
NO_CONTAINERS = {"cleanup", "validate", "backends", "ls", "restore"}
CHANGING = {"create", "start", "stop", "reboot", "rm", "ports", "rmports", "links",
            "rmlinks", "cgroup", "freeze", "unfreeze", "cleanup", "restore"}


def _command_options() -> list[tuple[tuple[str, ...], set[str], dict]]:
    """Each command option: its flags, the commands that take it, and
    argparse's settings."""
    return [
        (("--timeout",), {"start", "plan", "stop", "reboot", "cleanup"},
         dict(type=_seconds, default=30.0, metavar="SECONDS",
              help="wait at most this long for each container (default: 30)")),
        (("--no-ports",), {"start", "plan", "stop"},
         dict(dest="ports", action="store_false", help="leave the port forwards alone")),
        (("--no-links",), {"start", "plan", "stop"},
         dict(dest="links", action="store_false", help="leave the links alone")),
        (("--restart",), {"start", "plan"},
         dict(action="store_true", help="restart containers that run already")),
        (("--add-hosts",), {"start", "plan"},
         dict(action="store_true", help="put the containers' names into the host's /etc/hosts")),
        (("--migrate",), {"start", "plan", "reboot", "ports", "links", "restore"},
         dict(action="store_true",
              help="move the project's rules from the backend that made them to the chosen one")),
        (("--parallel",), {"start", "plan", "stop", "reboot", "rm", "cgroup", "freeze",
                           "unfreeze", "cleanup", "restore"},
         dict(type=_count, default=None, metavar="N",
              help="act on at most N containers at once (default: twice the CPUs, 4 to 16)")),
        (("--keep-orphans",), {"cleanup"},
         dict(action="store_true",
              help="leave running the containers the project file no longer lists")),
        (("--check",), {"status"},
         dict(action="store_true",
              help="print only what differs; exit 1 when anything does, 0 when all is in place")),
        (("--dry-run", "-n"), CHANGING,
         dict(dest="dry_run", action="store_true",
              help="print the changes this command would make, and make none")),
        (("--json",), {"status", "backends", "ls", "plan"} | CHANGING,
         dict(action="store_true", help="machine-readable output")),
    ]


def _global_options(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """The global options, accepted before and after the command. After it,
    an option that is not given must not override one given before."""
    from locker.cli.about import VersionAction

    def default(value):
        return argparse.SUPPRESS if after_command else value

    add = parser.add_argument
    # argparse parses a command's options into a namespace of their own, so
    # a count after the command is kept apart and added up in main().
    add("-v", "--verbose", action="count", default=default(0),
        dest="verbose_after" if after_command else "verbose",
        help="show tracebacks; twice: also trace every hook call")
    add("-f", "--file", default=default("locker.yaml"), metavar="FILE",
        help="project file (default: ./locker.yaml)")
    add("-p", "--project", default=default(None), metavar="PROJECT",
        help="project name (default: the project file's directory name)")
    add("-P", "--lxcpath", default=default(None), metavar="LXCPATH",
        help="where the containers live (default: host file, then LXC's default)")
    add("--backend", default=default(None), metavar="FIREWALL",
        help="firewall backend, e.g. nftables or iptables (default: $LOCKER_BACKEND, "
             "host file, auto-detection)")
    add("--link-backend", default=default(None), metavar="LINK",
        help="link backend, e.g. netlink, the built-in one (default: "
             "$LOCKER_LINK_BACKEND, host file, auto-detection)")
    add("--no-color", action="store_true", default=default(False),
        help="no colours (also when NO_COLOR is set or output is not a terminal)")
    if not after_command:
        add("--version", action=VersionAction)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="locker", description="Run a project of LXC containers with their networking.")
    _global_options(parser, after_command=False)
    after = argparse.ArgumentParser(add_help=False)
    _global_options(after, after_command=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    options = _command_options()
    for name, summary in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary, parents=[after])
        if name == "restore":
            sub.add_argument("projects", nargs="*", metavar="PROJECT",
                             help="only these projects (default: every one of the host state)")
        elif name == "completion":
            sub.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="SHELL",
                             help="bash, zsh or fish")
        elif name not in NO_CONTAINERS:
            sub.add_argument("containers", nargs="*", metavar="CONTAINER",
                             help="limit to these containers (default: all)")
        for flags, takers, settings in options:
            if name in takers:
                sub.add_argument(*flags, **settings)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.verbose += vars(args).pop("verbose_after", 0)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from locker.cli import commands
    from locker.cli.output import Output

    out = Output.for_terminal(no_color=args.no_color, environ=os.environ)
    try:
        return commands.HANDLERS[args.command](args, out) or EXIT_OK
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except Exception as exc:  # every error ends here, mapped to an exit status
        return out.failure(exc, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
