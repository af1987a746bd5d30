"""Load and validate a project file (``locker.yaml``) into a ``Project``.

Every problem in the file is reported in one run, one line each, with file,
line, key and value (see ``locker.yamlnodes``), as a ``ConfigError``.

Choices where the behaviour contract is silent (documented in docs/projectfile.rst):

- ``defaults`` takes every container key except ``clone`` (a clone names one
  other container) and ``fqdn`` (it names one container).
- A container's key replaces the same key of ``defaults`` as a whole, lists
  included, so ``dns: []`` in a container drops the default nameservers and
  a key set to nothing (``ports:``) means empty. ``template``, ``clone`` and
  ``download`` count as one key, the source. The exception is ``cgroup``,
  which is merged per setting: the container's ``memory.max=..`` replaces
  the default's ``memory.max``, other default settings stay.
- A container without a source must exist already (``create`` skips it).
- ``template`` is a name (``template: busybox``) or a mapping with ``name``
  and further ``ARG: VALUE`` pairs, passed to the template as ``--ARG VALUE``.
- A link in ``defaults`` is not given to the container it names.
- Port protocols are case-insensitive; HOST_IP ``0.0.0.0`` means every
  address, ``localhost`` is 127.0.0.1. A link alias may be any DNS name.
- A port range ``START-END`` needs a range of the same length on the other
  side (``8000-8010:80`` is refused, not read as Docker's "any of"); host
  port ranges of the project's forwards must not overlap on a protocol and
  an address both listen on.
- ``isolated: true|false`` (any case) at the top level; unset, the host
  file's ``isolated`` applies (``Project.isolated`` None).
- ``ipv6: true|false`` (any case) at the top level; unset, the host file's
  ``ipv6`` applies (``Project.ipv6`` None; ``load_project``'s
  ``ipv6_default``). A forward with an IPv6 HOST_IP in a project without
  IPv6 is refused at its line.
- The project's name: ``-p NAME``, then ``LOCKER_PROJECT``, then the
  top-level ``name:`` key, then the name of the file's directory (as
  docker-compose does). A directory name that is no valid name (``my_app``)
  is refused, with the ``name:`` to set proposed; it is never changed
  silently, since the name is in the LXC names, the bridge and the host
  state.
- Limits: besides those of ``locker.yamlnodes`` (size, depth, nodes), the
  containers' lists together, with ``defaults`` given to every container,
  hold at most ``MAX_ENTRIES`` entries. Every check costs time linear in
  the file and in those entries.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from locker import names, projectsyntax as syntax
from locker.errors import ConfigError
from locker.names import is_valid_name
from locker.planner import FIRST_HOST, LAST_HOST
from locker.project import (CloneSource, ContainerSpec, DownloadSource, LinkSpec, PortSpec,
                            Project, Source, TemplateSource)
from locker.yamlnodes import (Entry, Invalid, Problems, entries, is_null, items, known,
                              line_of, read_yaml, text)

TOP_KEYS = ("name", "isolated", "ipv6", "defaults", "containers")
#: The environment variable that names the project (after -p, before the
#: file's ``name:`` key and the directory's name).
ENV_PROJECT = "LOCKER_PROJECT"
SOURCE_KEYS = ("template", "clone", "download")
CONTAINER_KEYS = SOURCE_KEYS + ("ports", "links", "fqdn", "dns", "volumes", "cgroup")
DEFAULT_KEYS = tuple(key for key in CONTAINER_KEYS if key not in ("clone", "fqdn"))
NOT_IN_DEFAULTS = {
    "clone": "clone names one container to copy, so it cannot be a default; "
             "set it on the container",
    "fqdn": "an fqdn names one container, so it cannot be a default; set it on the container",
}
DOWNLOAD_KEYS = ("dist", "release", "arch", "variant")
#: A project's /24 gives its containers the host parts FIRST_HOST..LAST_HOST.
MAX_CONTAINERS = LAST_HOST - FIRST_HOST + 1
#: The most list entries (forwards, links, nameservers, volumes, cgroup
#: settings) of all containers together, defaults counted per container.
MAX_ENTRIES = 30_000


@dataclass(frozen=True)
class Located:
    """A value read from the file, with where it was."""

    value: Any
    node: Node
    path: str


Section = dict[str, Any]  # key -> Located, or list[Located] for list keys


def load_project(path: Path, project_name: str | None = None,
                 origin: str = "given with -p", ipv6_default: bool = False) -> Project:
    """Read and validate the project file at ``path``.

    The project is named ``project_name`` (``origin`` says where it came
    from: ``-p`` or ``LOCKER_PROJECT``), or else by the file's top-level
    ``name:`` key, or else after the directory that holds the file. Raises
    ``ConfigError`` listing every problem found. ``ipv6_default``: the host
    file's ``ipv6``, which applies when the file has no ``ipv6:`` key.
    """
    problems = Problems(str(path))
    try:
        root = read_yaml(path, problems)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such project file; run locker in the project's "
                          "directory, or name the file with -f FILE.") from None
    if root is None and not len(problems):
        problems.add(None, "", "the file is empty; describe the project's containers under "
                     "a containers: key")
    name = project_name if project_name is not None else _name_key(root, problems)
    if name is None:
        name = path.resolve().parent.name
        if not is_valid_name(name):
            better = names.suggested_name(name)
            problems.add(None, "project", "the file's directory name is not a valid project "
                         f"name: a project name is {syntax.NAME_RULE}; name the project "
                         f"with a top-level name: {better or 'NAME'} in the file (or -p NAME, "
                         f"or {ENV_PROJECT})", value=name)
    elif project_name is not None and not is_valid_name(name):
        problems.add(None, "project", f"not a valid project name ({origin}): a project name "
                     f"is {syntax.NAME_RULE}", value=name)
    containers, isolated, ipv6 = _read(root, name, problems, ipv6_default) \
        if root is not None else ([], None, None)
    problems.raise_if_any()
    return Project(name=name, path=path.resolve(), containers=tuple(containers),
                   isolated=isolated, ipv6=ipv6)


def _name_key(root: Node | None, problems: Problems) -> str | None:
    """The top-level ``name:``, or None without one (a bad one is reported
    here, and None returned as "checked")."""
    if not isinstance(root, MappingNode):
        return None
    for key_node, node in root.value:
        if getattr(key_node, "value", None) != "name":
            continue
        value = node.value if isinstance(node, ScalarNode) else None
        if not isinstance(value, str) or not value or not is_valid_name(value):
            shown = value if isinstance(value, str) else None
            problems.add(node, "name", f"not a valid project name: a project name is "
                         f"{syntax.NAME_RULE}", value=shown)
            return "invalid"
        return value
    return None


def _read(root: Node, project: str, problems: Problems, ipv6_default: bool = False
          ) -> tuple[list[ContainerSpec], bool | None, bool | None]:
    given = entries(root, "", problems)
    top = {entry.key: entry for entry in known(given, TOP_KEYS, problems)}
    isolated = _scalar(top["isolated"], _boolean, problems) if "isolated" in top else None
    ipv6 = _scalar(top["ipv6"], _ipv6_boolean, problems) if "ipv6" in top else None
    with_ipv6 = ipv6_default if ipv6 is None else ipv6
    return _containers(root, top, given, project, problems, with_ipv6), isolated, ipv6


def _ipv6_boolean(raw: str) -> bool:
    """``ipv6: true|false`` (any case)."""
    if raw.lower() not in ("true", "false"):
        raise Invalid("not true or false; true gives the project an IPv6 /64 besides its "
                      "IPv4 /24, false (or leaving it out, unless the host file says "
                      "ipv6: true) keeps it IPv4 only")
    return raw.lower() == "true"


def _boolean(raw: str) -> bool:
    """``isolated: true|false`` (any case)."""
    if raw.lower() not in ("true", "false"):
        raise Invalid("not true or false; true keeps the project's containers from the "
                      "host's addresses other than their gateway (and so from other "
                      "projects' bridges), false lets them reach them")
    return raw.lower() == "true"


def _containers(root: Node, top: dict[str, Entry], given: list[Entry], project: str,
                problems: Problems, ipv6: bool = False) -> list[ContainerSpec]:
    defaults: Section = {}
    if "defaults" in top:
        defaults = _section(top["defaults"], DEFAULT_KEYS, problems, NOT_IN_DEFAULTS)
    if "containers" not in top:
        misspelt = difflib.get_close_matches("containers", [entry.key for entry in given])
        if isinstance(root, MappingNode) and not misspelt:
            problems.add(root, "containers", "missing; add a containers: mapping with at "
                         "least one container")
        return []
    node = top["containers"].node
    found = entries(node, "containers", problems)
    if not found and (isinstance(node, MappingNode) or is_null(node)):
        problems.add(node, "containers", "no containers; give at least one")
    if len(found) > MAX_CONTAINERS:
        problems.add(top["containers"].key_node, "containers",
                     f"{len(found)} containers, but a project's /24 holds at most "
                     f"{MAX_CONTAINERS}; split the project in two")
        return []
    for entry in found:
        if not is_valid_name(entry.key):
            problems.add(entry.key_node, entry.path,
                         f"not a valid container name: a container name is {syntax.NAME_RULE}")
    own = {entry.key: _section(entry, CONTAINER_KEYS, problems) for entry in found}
    if not ipv6:
        for section in (defaults, *own.values()):
            for located in section.get("ports", []):
                if located.value.host_ip is not None and located.value.host_ip.version == 6:
                    problems.add(located.node, located.path, "an IPv6 HOST_IP, but the "
                                 "project has no IPv6; set ipv6: true at the top of the file "
                                 "(or ipv6: true in the host file), or give an IPv4 HOST_IP",
                                 value=located.node.value)
    merged = {name: _merge(defaults, section) for name, section in own.items()}
    total = sum(len(value) for section in merged.values() for value in section.values()
                if isinstance(value, list))
    if total > MAX_ENTRIES:
        problems.add(top["containers"].key_node, "containers",
                     f"the containers' lists hold {total:,} entries with the defaults given "
                     f"to each container, more than the {MAX_ENTRIES:,} Locker takes; give "
                     "fewer forwards, or set lists on the containers that need them instead "
                     "of in defaults")
        return []
    inheriting = [name for name, section in own.items() if "ports" not in section]
    if defaults.get("ports") and len(inheriting) > 1:
        for located in defaults["ports"]:
            problems.add(located.node, located.path, _shared_default(inheriting),
                         value=located.node.value)
    # a default's forward or link is checked in the first container taking it
    first_takers = {key: next((name for name, section in own.items() if key not in section),
                              None) for key in ("ports", "links")}
    targets = _LinkTargets(list(own), problems)
    forwards = _Forwards()
    return [_container(name, project, section, targets, forwards, problems,
                       {key for key, first in first_takers.items() if first == name})
            for name, section in merged.items()]


def _shared_default(inheriting: list[str]) -> str:
    if len(inheriting) == 2:
        given = f"both {inheriting[0]} and {inheriting[1]}"
    else:
        given = (f"all {len(inheriting)} containers without ports of their own "
                 f"({inheriting[0]}, {inheriting[1]}, ...)")
    return f"defaults give this forward to {given}; move it to one container"


def _section(entry: Entry, allowed: tuple[str, ...], problems: Problems,
             why: dict[str, str] | None = None) -> Section:
    """The keys of a container or of ``defaults``, each value checked on its
    own; what depends on the container is checked in ``_container``."""
    section: Section = {}
    source: Entry | None = None
    for key_entry in known(entries(entry.node, entry.path, problems), allowed, problems, why):
        key = key_entry.key
        if key in SOURCE_KEYS:
            if source is not None:
                problems.add(key_entry.key_node, key_entry.path,
                             f'a container has one source and "{source.key}" is given at line '
                             f"{line_of(source.key_node)}; keep one of template, clone, download")
                continue
            source = key_entry
            section["source"] = Located(_SOURCES[key](key_entry, problems),
                                        key_entry.node, key_entry.path)
        elif key == "fqdn":
            section[key] = Located(_scalar(key_entry, syntax.check_fqdn, problems),
                                   key_entry.node, key_entry.path)
        else:
            section[key] = _list(key_entry, _LIST_PARSERS[key], problems)
    seen: dict[str, Located] = {}
    for located in section.get("cgroup", []):
        key = located.value.key
        if key in seen:
            problems.add(located.node, located.path, f"{key} is set twice in this list "
                         f"(also at line {line_of(seen[key].node)}); keep one",
                         value=located.node.value)
        seen[key] = located
    return section


def _scalar(entry: Entry, parse: Callable[[str], Any], problems: Problems) -> Any:
    if is_null(entry.node):
        return None
    raw = text(entry.node, entry.path, problems)
    if raw is None:
        return None
    try:
        return parse(raw)
    except Invalid as error:
        problems.add(entry.node, entry.path, str(error), value=raw)
        return None


def _list(entry: Entry, parse: Callable[[str], Any], problems: Problems) -> list[Located]:
    parsed = []
    for node, path in items(entry.node, entry.path, problems):
        value = _scalar(Entry(entry.key, entry.key_node, node, path), parse, problems)
        if value is not None:
            parsed.append(Located(value, node, path))
    return parsed


_LIST_PARSERS: dict[str, Callable[[str], Any]] = {
    "ports": syntax.parse_port, "links": syntax.parse_link, "dns": syntax.parse_nameserver,
    "volumes": syntax.split_volume, "cgroup": syntax.parse_cgroup,
}


def _template(entry: Entry, problems: Problems) -> TemplateSource | None:
    if not isinstance(entry.node, MappingNode):
        name = _scalar(entry, syntax.check_template_word, problems)
        if is_null(entry.node):
            problems.add(entry.node, entry.path, "no template given; write template: NAME "
                         "or template: {name: NAME, ARG: VALUE}")
        return TemplateSource(name) if name else None
    name, args, named = None, [], False
    for arg in entries(entry.node, entry.path, problems):
        if arg.key == "name":
            named = True
            name = _scalar(arg, syntax.check_template_word, problems)
        elif not syntax.TEMPLATE_WORD.fullmatch(arg.key):
            problems.add(arg.key_node, arg.path, "a template argument is a plain word: "
                         "letters, digits, hyphens, underscores, a letter or digit first "
                         "(it is passed as --ARG VALUE)")
            continue
        else:
            value = _scalar(arg, syntax.check_template_value, problems)
            if value:
                args.append((arg.key, value))
            elif value == "":
                problems.add(arg.node, arg.path, "give a value")
        if is_null(arg.node):
            problems.add(arg.node, arg.path, "give a value")
    if not named:
        problems.add(entry.node, entry.path, "missing name: the LXC template to run; "
                     "write template: {name: busybox}")
    return TemplateSource(name, tuple(args)) if name else None


def _clone(entry: Entry, problems: Problems) -> CloneSource | None:
    name = _scalar(entry, syntax.check_lxc_name, problems)
    if name is None and is_null(entry.node):
        problems.add(entry.node, entry.path, "no container given; write clone: OTHER")
    return CloneSource(name) if name else None


def _download(entry: Entry, problems: Problems) -> DownloadSource | None:
    if not isinstance(entry.node, MappingNode):
        problems.add(entry.node, entry.path, "expected a mapping; write "
                     "download: {dist: debian, release: bookworm, arch: amd64}")
        return None
    given = {arg.key: arg for arg in known(entries(entry.node, entry.path, problems),
                                           DOWNLOAD_KEYS, problems)}
    values = {key: _scalar(arg, syntax.check_download_word, problems)
              for key, arg in given.items()}
    for arg in given.values():
        if is_null(arg.node):
            problems.add(arg.node, arg.path, "give a value")
    missing = [key for key in ("dist", "release", "arch") if key not in given]
    if missing:
        problems.add(entry.node, entry.path, f"missing {', '.join(missing)}; write "
                     "download: {dist: debian, release: bookworm, arch: amd64}")
        return None
    if any(values[key] is None for key in ("dist", "release", "arch")):
        return None
    return DownloadSource(values["dist"], values["release"], values["arch"],
                          values.get("variant"))


_SOURCES: dict[str, Callable[[Entry, Problems], Source | None]] = {
    "template": _template, "clone": _clone, "download": _download,
}


def _merge(defaults: Section, own: Section) -> Section:
    """Own keys replace default keys; cgroup settings merge by their key."""
    merged = {**defaults, **own}
    if "cgroup" in defaults and "cgroup" in own:
        settings = {located.value.key: located
                    for located in defaults["cgroup"] + own["cgroup"]}
        merged["cgroup"] = list(settings.values())
    return merged


def _container(name: str, project: str, section: Section, targets: _LinkTargets,
               forwards: _Forwards, problems: Problems,
               checks_defaults: set[str]) -> ContainerSpec:
    """Checks that need the whole project, then the container's spec.
    The forwards and links from defaults are checked only in the first
    container that takes them (``checks_defaults`` holds "ports", "links"
    there): a link's target is the same for all, and the forwards clash
    among their takers, which ``_read`` reports once."""
    source = section["source"].value if "source" in section else None
    if isinstance(source, CloneSource) and source.name == name:
        problems.add(section["source"].node, section["source"].path,
                     "a container cannot be a clone of itself; name another container",
                     value=source.name)
    # "every container links to db" from defaults does not include db itself
    links = [located for located in section.get("links", [])
             if not (located.value.name == name and located.path.startswith("defaults."))]
    for located in links:
        if "links" in checks_defaults or not located.path.startswith("defaults."):
            targets.check(located, name)
    fqdn = section["fqdn"].value if "fqdn" in section else None
    variables = {"project": project, "name": name}
    if fqdn is not None:
        variables["fqdn"] = fqdn
    volumes = []
    for located in section.get("volumes", []):
        try:
            volumes.append(syntax.substitute_volume(*located.value, variables))
        except Invalid as error:
            problems.add(located.node, located.path, f"container {name}: {error}",
                         value=located.node.value)
    ports = section.get("ports", [])
    for located in ports:
        if "ports" in checks_defaults or not located.path.startswith("defaults."):
            forwards.check(located, name, problems)
    return ContainerSpec(
        name=name, source=source, fqdn=fqdn, volumes=tuple(volumes),
        ports=tuple(located.value for located in ports),
        links=tuple(located.value for located in links),
        dns=tuple(located.value for located in section.get("dns", [])),
        cgroup=tuple(located.value for located in section.get("cgroup", [])),
    )


class _LinkTargets:
    """Checks a link's container; the close matches offered for an unknown
    one are found once per name, and only while the problems are few."""

    def __init__(self, names: list[str], problems: Problems) -> None:
        self._names = names
        self._known = set(names)
        self._problems = problems
        self._hints: dict[str, str] = {}

    def check(self, located: Located, name: str) -> None:
        link: LinkSpec = located.value
        raw = located.node.value
        if link.name == name:
            self._problems.add(located.node, located.path, f"container {name} cannot link "
                               "to itself; link to another container", value=raw)
        elif link.name not in self._known:
            self._problems.add(located.node, located.path, f"no container {link.name} in "
                               f"this project; {self._hint(link.name)}", value=raw)

    def _hint(self, missing: str) -> str:
        if missing not in self._hints:
            close = []
            if not self._problems.crowded and len(self._names) <= MAX_CONTAINERS:
                close = difflib.get_close_matches(missing, self._names, n=1)
            self._hints[missing] = (f'did you mean "{close[0]}"?' if close else
                                    "containers: " + ", ".join(self._names[:MAX_CONTAINERS]))
        return self._hints[missing]


class _Forwards:
    """The project's forwards by protocol, then by host address (None:
    every address), as sorted lists of host port ranges. None of them
    clash with each other, so the ranges of one address are disjoint and a
    new one is checked against one of them by bisection; ``_covered``
    holds per protocol the union of all addresses' ranges, so a forward on
    every address is checked by bisection too (the owner of a clash is
    looked up only for the problem's message)."""

    def __init__(self) -> None:
        self._taken: dict[str, dict[IPv4Address | IPv6Address | None, _Ranges]] = {}
        self._covered: dict[str, _Ranges] = {}

    def check(self, located: Located, name: str, problems: Problems) -> None:
        port: PortSpec = located.value
        by_address = self._taken.setdefault(port.protocol, {})
        covered = self._covered.setdefault(port.protocol, _Ranges())
        if port.host_ip is None:
            clash = None
            if covered.overlaps(port.host_port, port.host_end):
                clash = next(found for address, ranges in by_address.items()
                             if (found := ranges.overlapping(port.host_port, port.host_end)))
        else:
            clash = next((found for address in (port.host_ip, None)
                          if address in by_address and (found := by_address[address].overlapping(
                              port.host_port, port.host_end))), None)
        if clash is None:
            by_address.setdefault(port.host_ip, _Ranges()).add(
                port.host_port, port.host_end, (port, name, located.node))
            covered.merge(port.host_port, port.host_end)
            return
        other, other_name, other_node = clash
        if other_node is located.node:  # one YAML alias in several containers
            why = (f"a YAML alias gives this forward to more than one container "
                   f"({other_name} first); give it to one container")
        else:
            every = (" (a forward without HOST_IP takes the port on every address)"
                     if port.host_ip != other.host_ip else "")
            if port.count == other.count == 1:
                what = f"host port {port.host_port}/{port.protocol} is already forwarded"
            else:
                what = (f"host ports {port.host_ports}/{port.protocol} overlap "
                        f"{other.host_ports}/{other.protocol}, already forwarded")
            why = (f"{what} to container {other_name} at line {line_of(other_node)}{every}; "
                   f"use {'another HOST_PORT' if port.count == 1 else 'other host ports'}")
        problems.add(located.node, located.path, why, value=located.node.value)


class _Ranges:
    """Disjoint port ranges, sorted, each with what it belongs to."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._items: list[tuple[int, int, Any]] = []

    def overlapping(self, first: int, last: int) -> Any:
        """What a range overlapping ``first``..``last`` belongs to, or None."""
        index = bisect.bisect_right(self._starts, last) - 1
        if index >= 0 and self._items[index][1] >= first:
            return self._items[index][2]
        return None

    def overlaps(self, first: int, last: int) -> bool:
        return self.overlapping(first, last) is not None

    def add(self, first: int, last: int, owner: Any) -> None:
        index = bisect.bisect_right(self._starts, first)
        self._starts.insert(index, first)
        self._items.insert(index, (first, last, owner))

    def merge(self, first: int, last: int) -> None:
        """Add ``first``..``last`` joined with the ranges it overlaps."""
        low = bisect.bisect_left(self._starts, first)
        if low > 0 and self._items[low - 1][1] >= first:
            low -= 1
        high = bisect.bisect_right(self._starts, last)
        if high > low:
            first = min(first, self._items[low][0])
            last = max(last, max(item[1] for item in self._items[low:high]))
        self._starts[low:high] = [first]
        self._items[low:high] = [(first, last, True)]
