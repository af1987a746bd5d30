"""Reading YAML for Locker's config files while keeping every line number.

The files are parsed with ``yaml.compose`` (PyYAML's safe loader, no object
construction), and values are built from the nodes by the caller. That keeps
the line of every key and value, lets duplicate keys be reported (PyYAML's
constructor silently keeps the last), and gives the raw text of every scalar,
so that an unquoted ``80:22`` stays ``"80:22"`` instead of becoming the YAML
1.1 base-60 integer 4822.

Problems are collected, not raised one by one, so that one run reports them
all. Each is one line::

    FILE:LINE: KEY.PATH: "VALUE": what is wrong; what to do

(``"VALUE"`` is left out where the problem is the key itself; ``:LINE`` where
the problem is the whole file). Values are JSON-quoted, so a line never
breaks, whatever the file holds.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from locker.errors import ConfigError

NULL_TAG = "tag:yaml.org,2002:null"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")
#: Characters that break a line or a config file: C0 and C1 controls and
#: the Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Invalid(ValueError):
    """A value breaks its grammar; the message says what is wrong and what
    to do, without the place (the caller adds that)."""


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def child(path: str, key: str) -> str:
    """``path.key``, quoting a key that would make the path ambiguous."""
    part = key if _PLAIN_KEY.fullmatch(key) else quote(key)
    return f"{path}.{part}" if path else part


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _escape(match: re.Match[str]) -> str:
    """A control character as JSON writes it, so a problem stays one line."""
    return json.dumps(match.group())[1:-1]


def kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "nothing" if is_null(node) else "a single value"


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


@dataclass
class Problems:
    """The problems found in one file, reported together."""

    file: str
    _found: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, where: Node | int | None, key: str, message: str,
            value: str | None = None) -> None:
        """Record a problem at a node (or line number; None: the whole file)
        with its key path and, where it helps, the offending value."""
        line = line_of(where) if isinstance(where, Node) else where
        column = where.start_mark.column if isinstance(where, Node) else 0
        place = self.file if line is None else f"{self.file}:{line}"
        parts = [place]
        if key:
            parts.append(key)
        if value is not None:
            parts.append(quote(value))
        text = CONTROL.sub(_escape, ": ".join(parts) + ": " + message)
        entry = (line or 0, column, text)
        if all(found[2] != text for found in self._found):  # defaults repeat per container
            self._found.append(entry)

    def __len__(self) -> int:
        return len(self._found)

    def lines(self) -> list[str]:
        """One line per problem, in the order of the file, file-level ones
        first."""
        return [found[2] for found in sorted(self._found, key=lambda found: found[:2])]

    def raise_if_any(self) -> None:
        if self._found:
            count = len(self._found)
            noun = "problem" if count == 1 else "problems"
            raise ConfigError(f"{self.file} has {count} {noun}.", self.lines())


# libyaml's loader is twenty times faster and keeps the same marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, problems: Problems) -> Node | None:
    """The root node of the file, or None if it is empty or not YAML (a
    syntax error is recorded with its line). An unreadable file raises."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise  # the caller knows whether a missing file is fine
    except OSError as error:
        raise ConfigError(f"Cannot read {problems.file}: {error.strerror}; "
                          "check the path and its permissions.") from error
    try:
        return yaml.compose(data, Loader=_LOADER)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = error.problem or error.context or "invalid YAML"
        if error.problem and error.context and error.context_mark:
            what = (f"{error.context} at line {error.context_mark.line + 1}: "
                    f"{error.problem.removeprefix('but ')}")
        problems.add(mark.line + 1 if mark else None, "",
                     f"YAML syntax error: {what}; fix the YAML syntax")
    except yaml.reader.ReaderError as error:  # bad encoding, control characters
        before = data.decode("utf-8", "replace")[:error.position]
        problems.add(before.count("\n") + 1, "",
                     f"not readable as YAML text: {error.reason} (#x{error.character:02x}); "
                     "save the file as UTF-8 text without control characters")
    return None


@dataclass(frozen=True)
class Entry:
    """One ``key: value`` of a mapping, with its key path."""

    key: str
    key_node: Node
    node: Node
    path: str


def entries(node: Node, path: str, problems: Problems) -> list[Entry]:
    """The entries of a mapping node (null counts as empty). Reports a
    non-mapping, non-string keys and keys given twice."""
    if is_null(node):
        return []
    if not isinstance(node, MappingNode):
        problems.add(node, path, f"expected a mapping of keys to values, found {kind(node)}")
        return []
    found: list[Entry] = []
    seen: dict[str, Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or is_null(key_node):
            problems.add(key_node, path, f"a key must be a plain name, found {kind(key_node)}")
            continue
        key = key_node.value
        if key in seen:
            problems.add(key_node, child(path, key),
                         f"key given twice (first at line {line_of(seen[key])}); "
                         "keep only one of them")
            continue
        seen[key] = key_node
        found.append(Entry(key, key_node, value_node, child(path, key)))
    return found


def known(found: Iterable[Entry], allowed: Iterable[str], problems: Problems,
          why: dict[str, str] | None = None) -> list[Entry]:
    """The entries whose key is allowed; the others are reported, with the
    allowed key they were probably meant to be, or with ``why[key]``."""
    allowed = list(allowed)
    ok = []
    for entry in found:
        if entry.key in allowed:
            ok.append(entry)
        elif why and entry.key in why:
            problems.add(entry.key_node, entry.path, why[entry.key])
        else:
            close = difflib.get_close_matches(entry.key, allowed, n=1, cutoff=0.6)
            hint = (f'did you mean "{close[0]}"?' if close
                    else "allowed keys: " + ", ".join(allowed))
            problems.add(entry.key_node, entry.path, f"unknown key; {hint}")
    return ok


def text(node: Node, path: str, problems: Problems) -> str | None:
    """The raw text of a scalar, as written (after quotes and escapes), or
    None (reported) for a list or mapping."""
    if isinstance(node, ScalarNode):
        return node.value
    problems.add(node, path, f"expected a single value, found {kind(node)}")
    return None


def items(node: Node, path: str, problems: Problems) -> list[tuple[Node, str]]:
    """The items of a list node with their key paths (null counts as
    empty); a non-list is reported."""
    if is_null(node):
        return []
    if not isinstance(node, SequenceNode):
        example = f' (for example ["{node.value}"])' if isinstance(node, ScalarNode) else ""
        problems.add(node, path, f"expected a list, found {kind(node)}; "
                     f"write the value as a YAML list{example}")
        return []
    return [(value, item(path, index)) for index, value in enumerate(node.value)]
