"""The commands of the command line, as the modules that implement them
register them: each command with its summary, its arguments, its options,
whether it changes the host and whether it needs root, next to its handler
(``@command`` in ``locker.cli.commands`` and ``locker.cli.about``).
``locker.cli.main`` builds the parser from what is registered, in the order
of registration.

Registering modules must stay cheap to import (their heavy imports are
inside the handlers), so that ``locker --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

Handler = Callable[..., "int | None"]
#: How a command opens its project (``locker.cli.session.open_context``):
#: ADDS, with the backends chosen now (another one than the recorded one
#: is refused unless ``--migrate``); KEEPS, with the recorded ones.
ADDS, KEEPS = "adds", "keeps"
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Option:
    """One command option: its flags and argparse's settings for it."""

    flags: tuple[str, ...]
    settings: dict = field(default_factory=dict, hash=False, compare=False)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(*self.flags, **self.settings)


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    handler: Handler
    arguments: Arguments
    options: tuple[Option, ...] = ()
    changing: bool = False
    root: bool = True

    def add_to(self, commands, parents: list[argparse.ArgumentParser]) -> None:
        sub = commands.add_parser(self.name, help=self.summary, description=self.summary,
                                  parents=parents)
        self.arguments(sub)
        for option in self.options:
            option.add_to(sub)


#: Every registered command by name, in the order of registration.
REGISTRY: dict[str, Command] = {}


def command(name: str, summary: str, *, arguments: Arguments | None = None,
            options: tuple[Option, ...] = (), changing: bool = False,
            root: bool = True) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``locker NAME``.
    ``arguments`` adds the positional arguments (default: ``containers``);
    ``changing``: it changes the host (``--dry-run`` and ``--json`` of the
    changes, "nothing was left half made" when interrupted); ``root``
    False: it works without root (see ``locker.cli.privileges``)."""
    def register(handler: Handler) -> Handler:
        if name in REGISTRY:
            raise ValueError(f"the command {name!r} is registered twice")
        REGISTRY[name] = Command(name, summary, handler, arguments or containers, options,
                                 changing, root)
        return handler
    return register


# -- positional arguments ---------------------------------------------------

def containers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="*", metavar="CONTAINER",
                        help="limit to these containers (default: all)")


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command of the whole project or host."""


def one_container(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")


# -- value types of options ---------------------------------------------------

def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


#: Options more than one command takes.
TIMEOUT = Option(("--timeout",), dict(type=seconds, default=30.0, metavar="SECONDS",
                                      help="wait at most this long for each container "
                                           "(default: 30)"))
NO_PORTS = Option(("--no-ports",), dict(dest="ports", action="store_false",
                                        help="leave the port forwards alone"))
NO_LINKS = Option(("--no-links",), dict(dest="links", action="store_false",
                                        help="leave the links alone"))
MIGRATE = Option(("--migrate",), dict(action="store_true",
                                      help="move the project's rules from the backend that "
                                           "made them to the chosen one"))
PARALLEL = Option(("--parallel",), dict(type=count, default=None, metavar="N",
                                        help="act on at most N containers at once (default: "
                                             "eight per CPU, 8 to 32)"))
KEEP_ORPHANS = Option(("--keep-orphans",), dict(
    action="store_true", help="leave running the containers the project file no longer lists"))
DRY_RUN = Option(("--dry-run", "-n"), dict(
    dest="dry_run", action="store_true",
    help="print the changes this command would make, and make none"))
JSON = Option(("--json",), dict(action="store_true", help="machine-readable output"))
#: What every changing command takes, last.
CHANGES = (DRY_RUN, JSON)
