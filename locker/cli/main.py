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



def registry() -> dict:
    """Every command by name, as the command modules register them."""
    from locker.cli import commands, about  # noqa: F401 (they register their commands, in this order)
    from locker.cli.registry import REGISTRY

    return REGISTRY


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


def build_parser() -> argparse.ArgumentParser:
    registered = registry()  # first: the order of registration is the order of the help
    parser = argparse.ArgumentParser(
        prog="locker", description="Run a project of LXC containers with their networking.")
    _global_options(parser, after_command=False)
    after = argparse.ArgumentParser(add_help=False)
    _global_options(after, after_command=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in registered.values():
        command.add_to(commands, parents=[after])
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

    try:
        from locker.journal import SIGNALLED, SIGNALS, interrupt

        SIGNALS.reset()
        previous = {number: signal.signal(number, interrupt)
                    for number in SIGNALLED}
    except KeyboardInterrupt:  # Ctrl-C before Locker's handlers were there: nothing was done
        print("locker: error: interrupted by SIGINT before anything was done", file=sys.stderr)
        return 130
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
        command = registry()[args.command]
        changing = command.changing
        from locker.cli.output import Output

        out = Output.for_terminal(no_color=args.no_color, environ=os.environ)
        try:
            from locker.cli.privileges import require_root

            require_root(args.command)
            status = command.handler(args, out) or EXIT_OK
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
