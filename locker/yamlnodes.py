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
breaks, whatever the file holds. At most ``MAX_SHOWN`` problems are listed,
then how many more there are.

A file is checked against three limits before it is composed into nodes,
so that a hostile file costs at most a second and a few tens of MB instead
of minutes, gigabytes or a crash: ``MAX_FILE_BYTES`` (read no further),
``MAX_DEPTH`` (libyaml's composer recurses once per level and overflows
the C stack somewhere past 10,000), and ``MAX_NODES``, counted with every
alias expanded, as the caller will walk them. The depth and the nodes are
counted on libyaml's event stream, which is made without recursion, and
the count stops at the first event past a limit.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.events import (AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent,
                         ScalarEvent)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from locker.errors import ConfigError, Invalid
from locker.project import CONTROL

NULL_TAG = "tag:yaml.org,2002:null"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")

#: The largest file read: real project files are a few KiB.
MAX_FILE_BYTES = 1 << 20
#: The deepest nesting of lists and mappings: a project file needs 5.
MAX_DEPTH = 64
#: The most nodes (keys, values, list items), aliases expanded: 253
#: containers with a hundred forwards each are 26,000.
MAX_NODES = 30_000
#: The most problems listed; the others are counted.
MAX_SHOWN = 100


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
    """The problems found in one file, reported together. A problem is
    kept once however often it is found (defaults repeat per container),
    and only the ones listed are formatted."""

    file: str
    #: (line, key, value, message) -> column; line 0 is the whole file
    _found: dict[tuple[int, str, str | None, str], int] = field(default_factory=dict)

    def add(self, where: Node | int | None, key: str, message: str,
            value: str | None = None) -> None:
        """Record a problem at a node (or line number; None: the whole file)
        with its key path and, where it helps, the offending value."""
        line = line_of(where) if isinstance(where, Node) else where
        column = where.start_mark.column if isinstance(where, Node) else 0
        self._found.setdefault((line or 0, key, value, message), column)

    def __len__(self) -> int:
        return len(self._found)

    @property
    def crowded(self) -> bool:
        """More problems than are listed: hints that cost time to find
        (close matches) may be left out of the rest."""
        return len(self._found) > MAX_SHOWN

    def lines(self) -> list[str]:
        """One line per problem, in the order of the file, file-level ones
        first; past ``MAX_SHOWN``, one last line says how many more."""
        ordered = sorted(self._found.items(), key=lambda item: (item[0][0], item[1]))
        shown = [self._format(*problem) for problem, _ in ordered[:MAX_SHOWN]]
        more = len(ordered) - len(shown)
        if more:
            shown.append(f"{self.file}: ... and {more:,} more problem{'s' if more > 1 else ''}"
                         "; fix these first")
        return shown

    def _format(self, line: int, key: str, value: str | None, message: str) -> str:
        parts = [f"{self.file}:{line}" if line else self.file]
        if key:
            parts.append(key)
        if value is not None:
            parts.append(quote(value))
        return CONTROL.sub(_escape, ": ".join(parts) + ": " + message)

    def raise_if_any(self) -> None:
        if self._found:
            count = len(self._found)
            noun = "problem" if count == 1 else "problems"
            raise ConfigError(f"{self.file} has {count:,} {noun}.", self.lines())


# libyaml's loader is twenty times faster and keeps the same marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, problems: Problems) -> Node | None:
    """The root node of the file, or None if it is empty or not YAML (a
    syntax error is recorded with its line). An unreadable file raises."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise  # the caller knows whether a missing file is fine
    except OSError as error:
        raise ConfigError(f"Cannot read {problems.file}: {error.strerror}; "
                          "check the path and its permissions.") from error
    if len(data) > MAX_FILE_BYTES:
        problems.add(None, "", f"the file is larger than {MAX_FILE_BYTES:,} bytes (1 MiB), "
                     "the most Locker reads; is it the right file? Locker's project and "
                     "host files take a few KiB")
        return None
    try:
        if _within_limits(data, problems):
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


def _within_limits(data: bytes, problems: Problems) -> bool:
    """Whether the file stays within MAX_DEPTH and MAX_NODES; the first
    limit passed is recorded at its line. Linear in the events read, and
    it reads no further than the limit."""
    depth = 0
    nodes = 0
    sizes: dict[str, int] = {}  # anchor -> nodes below it, itself included
    open_sizes: list[tuple[int, str | None]] = []  # (nodes before it, anchor)
    for event in yaml.parse(data, Loader=_LOADER):
        if not isinstance(event, (NodeEvent, CollectionEndEvent)):
            continue
        if isinstance(event, AliasEvent):
            nodes += sizes.get(event.anchor, 1)
        elif isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                problems.add(event.start_mark.line + 1, "", f"lists and mappings are nested "
                             f"more than {MAX_DEPTH} deep here; Locker's files need at most "
                             "5 levels, flatten the file")
                return False
            open_sizes.append((nodes, event.anchor))
            nodes += 1
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
            before, anchor = open_sizes.pop()
            if anchor is not None:
                sizes[anchor] = nodes - before
        else:
            nodes += 1
            if isinstance(event, ScalarEvent) and event.anchor is not None:
                sizes[event.anchor] = 1
        if nodes > MAX_NODES:
            problems.add(event.start_mark.line + 1, "", f"the file holds more than "
                         f"{MAX_NODES:,} keys, values and list items by here (aliases "
                         "count with everything they repeat); split the project in two "
                         "or give fewer forwards")
            return False
    return True


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
