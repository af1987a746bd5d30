"""Generate the man page locker(1), the bash, zsh and fish completions and
the documentation's command reference (docs/commands.rst) from the argparse
parser (``locker.cli.main.build_parser``), so that they can
never drift from the command line.

- man page: argparse-manpage (Debian: python3-argparse-manpage), one section
  per command, plus the sections below that the parser cannot know;
- bash and zsh: shtab (Debian: python3-shtab);
- fish: shtab has no fish generator, so this module writes ``complete``
  lines from the same parser walk.

Run ``scripts/gen-docs`` after changing the command line; the test
``tests/unit/test_packaging.py`` fails while a committed file differs from a
fresh generation. ``scripts/gen-docs --check`` only compares.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAN_PAGE = "man/locker.1"
COMMANDS_PAGE = "docs/commands.rst"
COMPLETION_DIR = "locker/completions"
# argparse wraps help text at the terminal's width: a width no line reaches
# leaves the wrapping to man, and the output the same on every machine.
WIDTH = "1000"

MAN_SECTIONS = [
    ("exit status",
     "0 success; 1 an operation failed (or, for status --check, something "
     "differs); 2 bad usage, or a bad project or host file; 130 interrupted."),
    ("environment",
     "LOCKER_CONFIG: the host file (default /etc/locker/locker.yaml). "
     "LOCKER_BACKEND, LOCKER_LINK_BACKEND: the firewall and link backends, "
     "unless --backend or --link-backend is given. LOCKER_STATE_DIR: Locker's "
     "host state (default /var/lib/locker). NO_COLOR: no colours."),
    ("files",
     "locker.yaml: the project file (see -f). /etc/locker/locker.yaml: the "
     "host file (firewall, link, lxcpath, subnets, state_dir). "
     "/var/lib/locker/projects/PROJECT.json: what Locker made for each "
     "project."),
    ("completion",
     "The completion scripts are installed in "
     "/usr/share/bash-completion/completions/locker, "
     "/usr/share/zsh/vendor-completions/_locker and "
     "/usr/share/fish/vendor_completions.d/locker.fish by distribution "
     "packages; locker completion SHELL prints them, for example "
     "locker completion bash > ~/.local/share/bash-completion/completions/locker."),
    ("see also",
     "lxc(7), nft(8), iptables(8), ip(8). The user guide and the project-file "
     "reference: /usr/share/doc/python3-locker/ or the docs/ folder of the source."),
]


def parser() -> argparse.ArgumentParser:
    import shtab

    from locker.cli.main import build_parser

    result = build_parser()
    # What shtab completes for option values (it walks the sub-parsers too).
    for sub in [result] + _subparsers(result):
        for action in sub._actions:
            if "--file" in action.option_strings:
                action.complete = shtab.FILE
            elif "--lxcpath" in action.option_strings:
                action.complete = shtab.DIRECTORY
    return result


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for sub in dict.fromkeys(action.choices.values())]


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            found += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return found


def man_page(parser: argparse.ArgumentParser) -> str:
    from build_manpages.manpage import Manpage

    from locker import __version__

    parser.man_short_description = "run groups of LXC containers with their networking"
    parser._manpage = [{"heading": heading, "content": content}
                       for heading, content in MAN_SECTIONS]
    text = str(Manpage(parser))
    first, rest = text.split("\n", 1)
    assert first.startswith(".TH "), first
    # A title line with the version, and no date: the file stays reproducible.
    return f'.TH LOCKER 1 "" "locker {__version__}" "User Commands"\n' + rest


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(action: argparse.Action, condition: str) -> str | None:
    if not action.option_strings or action.help == argparse.SUPPRESS:
        return None
    parts = ["complete -c locker", f"-n {_fish_quote(condition)}"]
    for flag in action.option_strings:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if action.nargs != 0:
        parts.append("-r")
        if action.choices:
            parts.append("-f -a " + _fish_quote(" ".join(map(str, action.choices))))
        elif "--lxcpath" in action.option_strings:
            parts.append("-f -a '(__fish_complete_directories)'")
        elif "--file" not in action.option_strings:
            parts.append("-f")
    if action.help:
        parts.append(f"-d {_fish_quote(action.help.split('(')[0].strip())}")
    return " ".join(parts)


def fish(parser: argparse.ArgumentParser) -> str:
    commands = _commands(parser)
    names = " ".join(name for name, _, _ in commands)
    lines = ["# fish completion for locker, generated from its argparse parser by",
             "# scripts/gen-docs (do not edit).", "",
             "complete -c locker -f"]
    top = f"not __fish_seen_subcommand_from {names}"
    lines += [line for action in parser._actions if (line := _fish_option(action, top))]
    for name, summary, sub in commands:
        lines.append(f"complete -c locker -n {_fish_quote(top)} -a {name} "
                     f"-d {_fish_quote(summary)}")
    for name, _, sub in commands:
        seen = f"__fish_seen_subcommand_from {name}"
        lines += [line for action in sub._actions
                  if (line := _fish_option(action, seen)) and "--help" not in action.option_strings]
        for action in sub._actions:
            if not action.option_strings and action.choices:
                lines.append(f"complete -c locker -n {_fish_quote(seen)} -a "
                             + _fish_quote(" ".join(action.choices)))
    return "\n".join(lines) + "\n"


def _rst_option(action: argparse.Action) -> list[str]:
    if action.help == argparse.SUPPRESS:
        return []
    if action.option_strings:
        metavar = action.metavar or (action.dest.upper() if action.nargs != 0 else None)
        spelled = ", ".join(f"{flag} {metavar}" if metavar else flag
                            for flag in action.option_strings)
    else:
        spelled = action.metavar or action.dest
    return [f"``{spelled}``", f"   {(action.help or '').replace('*', chr(92) + '*')}", ""]


def commands_rst(parser: argparse.ArgumentParser) -> str:
    """docs/commands.rst: every command with its usage and options."""
    title = "Commands"
    lines = [".. Generated from the parser by scripts/gen-docs: do not edit.", "",
             title, "=" * len(title), "",
             "Every command, with the options it takes, as ``locker COMMAND --help`` "
             "shows them. The global options are accepted before and after the command.",
             "", "Global options", "--------------", ""]
    for action in parser._actions:
        if action.option_strings:
            lines += _rst_option(action)
    for name, summary, sub in _commands(parser):
        heading = f"locker {name}"
        lines += [heading, "-" * len(heading), "", summary[0].upper() + summary[1:] + ".", "",
                  "::", ""]
        usage = sub.format_usage().removeprefix("usage: ").strip()
        lines += ["   " + usage, ""]
        own = [a for a in sub._actions
               if not a.option_strings or not (set(a.option_strings) & GLOBAL_FLAGS)]
        for action in own:
            if "--help" not in action.option_strings:
                lines += _rst_option(action)
    return "\n".join(lines).rstrip("\n") + "\n"


GLOBAL_FLAGS = {"-v", "--verbose", "-f", "--file", "-p", "--project", "-P", "--lxcpath",
                "--backend", "--link-backend", "--no-color"}


def generate() -> dict[str, str]:
    """Each generated file's path (from the repository's root) and text."""
    import shtab

    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return {
            MAN_PAGE: man_page(parser()),
            COMMANDS_PAGE: commands_rst(parser()),
            f"{COMPLETION_DIR}/locker.bash": shtab.complete(parser(), "bash"),
            f"{COMPLETION_DIR}/_locker": shtab.complete(parser(), "zsh"),
            f"{COMPLETION_DIR}/locker.fish": fish(parser()),
        }
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def located(path: str, root: Path = ROOT) -> Path:
    """Where a generated file is: the man page in ``root``, the completions
    in the ``locker`` package that is imported (the checkout's own, or an
    installed one where the tests run against it)."""
    if path.startswith("locker/"):
        import locker

        return Path(locker.__file__).parent / path.removeprefix("locker/")
    return root / path


def stale(root: Path = ROOT) -> list[str]:
    """The generated files that are missing or differ from a fresh generation."""
    return [path for path, text in generate().items()
            if not located(path, root).is_file()
            or located(path, root).read_text(encoding="utf-8") != text]


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        differ = stale()
        for path in differ:
            print(f"gen-docs: {path} is not what the parser gives; run scripts/gen-docs",
                  file=sys.stderr)
        return 1 if differ else 0
    for path, text in generate().items():
        target = ROOT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            print(f"gen-docs: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv))
