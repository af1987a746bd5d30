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
    "up": "create the containers that are missing, then start (create + start)",
    "down": "stop the containers and remove the project's network (--rm: the containers too)",
    "create": "create containers from their template, clone or download",
    "start": "ensure the bridge and rules, start containers, add their forwards and links",
    "plan": "show what start would change, and change nothing (start --dry-run)",
    "stop": "stop containers and remove their forwards and links",
    "reboot": "stop containers if running, then start them",
    "rm": "delete stopped containers (--force: stop them first)",
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
    "plugins": "list every installed plugin (backends and observers) with its distribution "
               "and version",
    "ls": "list every project of this host, from Locker's host state",
    "restore": "re-apply the network of running projects after a firewall reload or reboot",
    "exec": "run a command in a running container: exec CONTAINER -- CMD [ARG ...]",
    "attach": "a shell in a running container (lxc-attach)",
    "console": "the console of a running container (lxc-console; Ctrl-a q leaves it)",
    "logs": "show a container's console log",
    "completion": "print the completion script for bash, zsh or fish",
}
NO_CONTAINERS = {"cleanup", "down", "validate", "backends", "plugins", "ls", "restore"}
#: Commands on exactly one container.
ONE_CONTAINER = {"exec", "attach", "console", "logs"}
CHANGING = {"up", "down", "create", "start", "stop", "reboot", "rm", "ports", "rmports",
            "links", "rmlinks", "cgroup", "freeze", "unfreeze", "cleanup", "restore"}
#: The commands that take start's options.
STARTING = {"start", "plan", "up"}


def _command_options() -> list[tuple[tuple[str, ...], set[str], dict]]:
    """Each command option: its flags, the commands that take it, and
    argparse's settings."""
    return [
        (("--timeout",), STARTING | {"stop", "reboot", "cleanup", "down", "rm"},
         dict(type=_seconds, default=30.0, metavar="SECONDS",
              help="wait at most this long for each container (default: 30)")),
        (("--no-ports",), STARTING | {"stop"},
         dict(dest="ports", action="store_false", help="leave the port forwards alone")),
        (("--no-links",), STARTING | {"stop"},
         dict(dest="links", action="store_false", help="leave the links alone")),
        (("--restart",), STARTING,
         dict(action="store_true", help="restart containers that run already")),
        (("--add-hosts",), STARTING,
         dict(action="store_true", help="put the containers' names into the host's /etc/hosts")),
        (("--migrate",), STARTING | {"reboot", "ports", "links", "restore"},
         dict(action="store_true",
              help="move the project's rules from the backend that made them to the chosen one")),
        (("--parallel",), STARTING | {"stop", "reboot", "rm", "cgroup", "freeze",
                                      "unfreeze", "cleanup", "restore", "down"},
         dict(type=_count, default=None, metavar="N",
              help="act on at most N containers at once (default: eight per CPU, 8 to 32)")),
        (("--keep-orphans",), {"cleanup", "down"},
         dict(action="store_true",
              help="leave running the containers the project file no longer lists")),
        (("--force",), {"rm"},
         dict(action="store_true", help="stop running containers first")),
        (("--rm",), {"down"},
         dict(dest="remove", action="store_true", help="also delete the containers")),
        (("--lines",), {"logs"},
         dict(type=_count, default=None, metavar="N", help="only the last N lines")),
        (("--follow",), {"logs"},
         dict(action="store_true", help="keep printing what the console writes")),
        (("--check",), {"status"},
         dict(action="store_true",
              help="print only what differs; exit 1 when anything does, 0 when all is in place")),
        (("--dry-run", "-n"), CHANGING,
         dict(dest="dry_run", action="store_true",
              help="print the changes this command would make, and make none")),
        (("--json",), {"status", "backends", "plugins", "ls", "plan"} | CHANGING,
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
        help="project name (default: $LOCKER_PROJECT, the file's name: key, the "
             "file's directory name)")
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
        elif name in ONE_CONTAINER:
            sub.add_argument("container", metavar="CONTAINER")
            if name == "exec":
                sub.add_argument("exec_command", nargs=argparse.REMAINDER, metavar="CMD",
                                 help="the command and its arguments, after --")
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
    command = getattr(args, "exec_command", None)
    if command and command[0] == "--":
        args.exec_command = command[1:]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. SIGINT, SIGTERM and SIGHUP end it with one line and
    exit 130, 143 or 129, never in the middle of a change (``locker.journal``). As
    the program (``argv`` None) a signal after the end is ignored (SIG_IGN,
    which Python's finalization keeps, where it would restore the default
    for a Python handler and die of the signal), so that nothing prints a
    traceback and the exit status stays the command's; called with
    ``argv`` (tests), the previous handlers come back."""
    import signal

    from locker.journal import SIGNALLED, SIGNALS, interrupt

    SIGNALS.reset()
    previous = {number: signal.signal(number, interrupt)
                for number in SIGNALLED}
    try:
        return _run(argv)
    finally:
        SIGNALS.finished = True
        for number, handler in previous.items():
            signal.signal(number, handler if argv is not None else signal.SIG_IGN)


def _run(argv: Sequence[str] | None) -> int:
    from locker.errors import Interrupted

    out = None
    changing = True
    try:
        args = parse_args(argv)
        changing = args.command in CHANGING
        from locker.cli import commands
        from locker.cli.output import Output

        out = Output.for_terminal(no_color=args.no_color, environ=os.environ)
        try:
            from locker.cli.privileges import require_root

            require_root(args.command)
            status = commands.HANDLERS[args.command](args, out) or EXIT_OK
        except (Interrupted, KeyboardInterrupt):
            raise
        except Exception as exc:  # every error ends here, mapped to an exit status
            status = out.failure(exc, verbose=args.verbose)
        from locker.journal import check_interrupted

        check_interrupted()  # a signal that came during the last change
        return status
    except KeyboardInterrupt:
        return _interrupted(out, Interrupted(2), changing)
    except Interrupted as exc:
        return _interrupted(out, exc, changing)


def _interrupted(out, exc, changing: bool) -> int:
    """One line; a changing command adds that nothing is half made."""
    message = f"interrupted by {exc.signal_name}"
    if changing:
        message += "; no change was left half made, and the ones made are listed above"
    if out is not None:
        out.error(message)
    else:
        print(f"locker: error: {message}", file=sys.stderr)
    return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
