"""Each project's own objects in table ``ip locker`` (and the same in ``ip6
locker`` with ``ipv6_addr`` for a project with IPv6, see ``family``): two chains, the maps
and sets that hold its forwards, the rules that lead into and look them up
(tag purpose ``dispatch``), and the forwards as elements. Pure functions,
no kernel.

For project ``P``:

=====================  =====================================================
object                 holds
=====================  =====================================================
``LOCKER_PRE_P``       ``dnat to ip daddr . meta l4proto . th dport map @P_dnatip_addr :
                       ip daddr . meta l4proto . th dport map @P_dnatip_port``, then the
                       same without ``ip daddr`` on ``@P_dnat_addr`` and ``@P_dnat_port``
``LOCKER_FWD_P``       one accept per forward set (``ct status dnat ip daddr .
                       tcp dport . ct original proto-dst @P_fwd_tcp accept`` ...),
                       then the project's links, outbound and replies rules
``P_dnat_addr|port``   maps ``inet_proto . inet_service : ipv4_addr`` and ``:
                       inet_service``: the DNAT half of each forward without host
                       address is one element in each, same key, same comment
``P_dnatip_addr|port`` the same keyed by the host address first
``P_fwd_tcp|udp``      set ``ipv4_addr . inet_service . inet_service``: the accept
                       half (container address, container port, host port)
``P_fwdip_tcp|udp``    the same with the host address last
``P_dnatr_addr``,      interval maps, the same keys (``tcp . 8000-8010``) to the
``P_dnatipr_addr``     container address only: a range of the same ports on both
                       sides (``8000-8010:8000-8010``) is one element; looked up by
                       ``dnat ip to [ip daddr .] meta l4proto . th dport map @...``,
                       which keeps the port
``P_fwdr_tcp|udp``,    interval sets, the accept half of such a range
``P_fwdipr_tcp|udp``   (``10.1.1.2 . 8000-8010 . 8000-8010``)
=====================  =====================================================

A shifted range (``8000-8010:9000-9010``) is one element per port in the
single-port maps and sets: nftables 1.0.6 has no shifted port map in a
DNAT (iptables' ``--to-destination IP:9000-9010/8000``), and an interval
map to ``ipv4_addr . inet_service`` translates every port of the range to
the first one. Those elements' comment names the range in its last part
(``locker:P:web:dnat:range-8000-8010``), so that they read back as one
forward, and only when every one of them is there as Locker writes it.
The range stores are created with the project's others; on a host of an
older Locker they are missing until the next adding hook creates them
(``entry_missing`` names them meanwhile).

``LOCKER_PREROUTING`` and ``LOCKER_FORWARD`` hold one dispatch rule per
project, ``jump LOCKER_PRE_P`` / ``jump LOCKER_FWD_P``. Every element's
comment is its forward's tag (``locker:P:web:dnat``), every structural
rule's ``locker:P:dispatch``.

The DNAT target is two maps rather than one map to ``ipv4_addr .
inet_service``: libnftables 1.0.6 crashes on a nat statement with
concatenated map data given as JSON (the text form works).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from locker.model import Forward
from locker.names import Tag

from locker_nftables.kernel import FAMILY, TABLE, Command

LOCKER_PREROUTING = "LOCKER_PREROUTING"
LOCKER_FORWARD = "LOCKER_FORWARD"
PROTO_NUMBERS = {"tcp": 6, "udp": 17}
PROTO_NAMES = {number: name for name, number in PROTO_NUMBERS.items()}
#: The purposes of the interval stores, and the half of a forward they hold.
RANGE_PURPOSES = {"dnat-range": "dnat", "forward-range": "forward"}
RANGE_MARK = "range-"


def pre_chain(project: str) -> str:
    return f"LOCKER_PRE_{project}"


def fwd_chain(project: str) -> str:
    return f"LOCKER_FWD_{project}"


def dispatch_tag(project: str) -> str:
    return str(Tag(project, "dispatch"))


@dataclass(frozen=True)
class Store:
    """One of a project's maps or sets."""

    name: str
    kind: str                 # "map" | "set"
    type: tuple[str, ...]
    data: tuple[str, ...] | None = None   # a map's value type
    purpose: str = "dnat"     # its elements: "dnat" (addresses), "dnat-port", "forward",
    #                           "dnat-range", "forward-range" (intervals)
    protocol: str | None = None
    host_ip: bool = False

    @property
    def interval(self) -> bool:
        return self.purpose in RANGE_PURPOSES

    @property
    def half(self) -> str:
        """The half of a forward its elements are: "dnat" or "forward"."""
        return RANGE_PURPOSES.get(self.purpose, self.purpose)

    def add_command(self) -> Command:
        body: dict[str, Any] = {"family": FAMILY, "table": TABLE, "name": self.name,
                                "type": list(self.type)}
        if self.data:
            body["map"] = self.data[0] if len(self.data) == 1 else list(self.data)
        if self.interval:
            body["flags"] = ["interval"]
        return {"add": {self.kind: body}}

    def list_command(self) -> Command:
        return {"list": {self.kind: {"family": FAMILY, "table": TABLE, "name": self.name}}}


@lru_cache(maxsize=64)
def stores(project: str) -> tuple[Store, ...]:
    """The project's maps and sets, DNAT maps first."""
    found = []
    for host_ip, prefix, key in ((True, "dnatip", ("ipv4_addr", "inet_proto", "inet_service")),
                                 (False, "dnat", ("inet_proto", "inet_service"))):
        found.append(Store(f"{project}_{prefix}_addr", "map", key, ("ipv4_addr",),
                           purpose="dnat", host_ip=host_ip))
        found.append(Store(f"{project}_{prefix}_port", "map", key, ("inet_service",),
                           purpose="dnat-port", host_ip=host_ip))
    for proto in PROTO_NUMBERS:
        found.append(Store(f"{project}_fwd_{proto}", "set",
                           ("ipv4_addr", "inet_service", "inet_service"),
                           purpose="forward", protocol=proto))
        found.append(Store(f"{project}_fwdip_{proto}", "set",
                           ("ipv4_addr", "inet_service", "inet_service", "ipv4_addr"),
                           purpose="forward", protocol=proto, host_ip=True))
    for host_ip, prefix, key in ((True, "dnatipr", ("ipv4_addr", "inet_proto", "inet_service")),
                                 (False, "dnatr", ("inet_proto", "inet_service"))):
        found.append(Store(f"{project}_{prefix}_addr", "map", key, ("ipv4_addr",),
                           purpose="dnat-range", host_ip=host_ip))
    for proto in PROTO_NUMBERS:
        found.append(Store(f"{project}_fwdr_{proto}", "set",
                           ("ipv4_addr", "inet_service", "inet_service"),
                           purpose="forward-range", protocol=proto))
        found.append(Store(f"{project}_fwdipr_{proto}", "set",
                           ("ipv4_addr", "inet_service", "inet_service", "ipv4_addr"),
                           purpose="forward-range", protocol=proto, host_ip=True))
    return tuple(found)


def port_store(project: str, addr: Store) -> Store:
    """The port map paired with a DNAT address map."""
    return next(s for s in stores(project)
                if s.purpose == "dnat-port" and s.host_ip == addr.host_ip)


# ------------------------------------------------------ structural rules

def _payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}


def _lookup_expr(project: str, store: Store) -> list[dict]:
    """A store's lookup rule, exactly as libnftables lists it back."""
    if store.purpose == "dnat-range":   # the address only: the port stays
        key = [_payload("ip", "daddr")] if store.host_ip else []
        key += [{"meta": {"key": "l4proto"}}, _payload("th", "dport")]
        return [{"dnat": {"addr": {"map": {"key": {"concat": key},
                                           "data": f"@{store.name}"}}}}]
    if store.purpose == "dnat":
        key = [_payload("ip", "daddr")] if store.host_ip else []
        key += [{"meta": {"key": "l4proto"}}, _payload("th", "dport")]
        port = port_store(project, store)
        return [{"dnat": {"addr": {"map": {"key": {"concat": key}, "data": f"@{store.name}"}},
                          "port": {"map": {"key": {"concat": key},
                                           "data": f"@{port.name}"}}}}]
    key = [_payload("ip", "daddr"), _payload(store.protocol, "dport"),
           {"ct": {"key": "proto-dst", "dir": "original"}}]
    if store.host_ip:
        key.append({"ct": {"key": "ip daddr", "dir": "original"}})
    return [{"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
            {"match": {"op": "==", "left": {"concat": key}, "right": f"@{store.name}"}},
            {"accept": None}]


@dataclass(frozen=True)
class Structural:
    """A rule of the project's skeleton: a dispatch jump or a lookup."""

    chain: str
    expr: tuple           # as libnftables lists it back, frozen
    first: bool = False   # inserted at the head of its chain (specific before general)

    def add_command(self, project: str) -> Command:
        verb = "insert" if self.first else "add"
        expr = thaw(self.expr)
        if "dnat" in expr[0]:   # listed without the family it must be given
            expr = [{"dnat": {"family": "ip", **expr[0]["dnat"]}}]
        return {verb: {"rule": {"family": FAMILY, "table": TABLE, "chain": self.chain,
                                "expr": expr, "comment": dispatch_tag(project)}}}


def _freeze(value: Any) -> Any:
    """A JSON value as something hashable and comparable."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@lru_cache(maxsize=64)
def structural(project: str) -> tuple[Structural, ...]:
    """Every structural rule of the project, with frozen expressions."""
    rules = [Structural(LOCKER_PREROUTING, _freeze([{"jump": {"target": pre_chain(project)}}])),
             Structural(LOCKER_FORWARD, _freeze([{"jump": {"target": fwd_chain(project)}}]))]
    for store in stores(project):
        if store.purpose == "dnat-port":
            continue
        chain = pre_chain(project) if store.half == "dnat" else fwd_chain(project)
        rules.append(Structural(chain, _freeze(_lookup_expr(project, store)),
                                first=store.half == "dnat" and store.host_ip))
    return tuple(rules)


@lru_cache(maxsize=64)
def structural_keys(project: str) -> frozenset:
    return frozenset((s.chain, s.expr) for s in structural(project))


def thaw(frozen: Any) -> Any:
    if isinstance(frozen, tuple) and frozen and all(
            isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) for i in frozen):
        return {k: thaw(v) for k, v in frozen}
    if isinstance(frozen, tuple):
        return [thaw(v) for v in frozen]
    return frozen


def structural_key(chain: str, expr: list) -> tuple:
    return (chain, _freeze([e for e in expr if "counter" not in e]))


def skeleton_commands(project: str) -> list[Command]:
    """``add`` commands for the project's chains and stores (no-ops when there)."""
    commands: list[Command] = [
        {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name}}}
        for name in (pre_chain(project), fwd_chain(project))]
    return commands + [store.add_command() for store in stores(project)]


def teardown_commands(project: str, chains: set[str], present: set[str]) -> list[Command]:
    """Flush and delete the project's chains and stores that are there
    (its dispatch rules must be deleted before, in the same batch)."""
    commands: list[Command] = []
    for name in (pre_chain(project), fwd_chain(project)):
        if name in chains:
            chain = {"family": FAMILY, "table": TABLE, "name": name}
            commands += [{"flush": {"chain": chain}}, {"delete": {"chain": chain}}]
    for store in stores(project):
        if store.name in present:
            commands.append({"delete": {store.kind: {"family": FAMILY, "table": TABLE,
                                                      "name": store.name}}})
    return commands


# ------------------------------------------------------ forwards <-> elements

@dataclass(frozen=True)
class Element:
    """One element of a project's store: its key (and a map's value) as
    JSON, and its comment."""

    store: str
    key: tuple
    data: tuple | None
    comment: str | None

    def add_command(self) -> Command:
        val = {"elem": {"val": {"concat": [thaw(p) for p in self.key]},
                        "comment": self.comment}}
        item: Any = [val, {"concat": list(self.data)}] if self.data is not None else val
        return {"add": {"element": {"family": FAMILY, "table": TABLE, "name": self.store,
                                    "elem": [item]}}}

    def delete_command(self) -> Command:
        return {"delete": {"element": {"family": FAMILY, "table": TABLE, "name": self.store,
                                       "elem": [{"concat": [thaw(p) for p in self.key]}]}}}


@lru_cache(maxsize=512)
def _store_named(project: str, purpose: str, host_ip: bool, protocol: str) -> str:
    for store in stores(project):
        if store.purpose == purpose and store.host_ip == host_ip \
                and store.protocol in (None, protocol):
            return store.name
    raise AssertionError(purpose)


@lru_cache(maxsize=4096)
def _tag_text(project: str, purpose: str, container: str, mark: str | None = None) -> str:
    return str(Tag(project, purpose, container, mark))


@lru_cache(maxsize=4096)
def parse_tag(comment: str | None) -> Tag | None:
    return Tag.parse(comment)


@lru_cache(maxsize=4096)
def _address(text: str) -> IPv4Address | IPv6Address:
    """An address from a listing (a forward's few addresses repeat); IPv6
    in the ``ip6`` table."""
    return ip_address(text)


def forward_elements(forward: Forward) -> dict[str, tuple[Element, ...]]:
    """The two halves of a forward as elements: {"dnat": (address element,
    port element), "forward": (accept element,)}; for a range of the same
    ports on both sides one interval element each ({"dnat": (address
    element,), ...}), for a shifted range those of each port in turn."""
    if forward.count > 1 and forward.host_port == forward.container_port:
        return _range_elements(forward)
    proto, host, project = forward.protocol, forward.host_ip, forward.project
    has_host = host is not None
    mark = (f"{RANGE_MARK}{forward.host_port}-{forward.host_end}",) if forward.count > 1 else ()
    dnat_tag = _tag_text(project, "dnat", forward.container, *mark)
    accept_tag = _tag_text(project, "forward", forward.container, *mark)
    addresses = _store_named(project, "dnat", has_host, proto)
    ports = _store_named(project, "dnat-port", has_host, proto)
    accepts = _store_named(project, "forward", has_host, proto)
    dnat: list[Element] = []
    accept: list[Element] = []
    for offset in range(forward.count):
        host_port, port = forward.host_port + offset, forward.container_port + offset
        dnat_key = tuple(([str(host)] if host else []) + [PROTO_NUMBERS[proto], host_port])
        accept_key = [str(forward.container_ip), port, host_port] + ([str(host)] if host else [])
        dnat += [Element(addresses, dnat_key, (str(forward.container_ip),), dnat_tag),
                 Element(ports, dnat_key, (port,), dnat_tag)]
        accept.append(Element(accepts, tuple(accept_key), None, accept_tag))
    return {"dnat": tuple(dnat), "forward": tuple(accept)}


def _range_elements(forward: Forward) -> dict[str, tuple[Element, ...]]:
    proto, host, project = forward.protocol, forward.host_ip, forward.project
    has_host = host is not None
    ports = {"range": [forward.host_port, forward.host_end]}
    dnat_key = ([str(host)] if host else []) + [PROTO_NUMBERS[proto], ports]
    accept_key = [str(forward.container_ip), ports, ports] + ([str(host)] if host else [])
    return {
        "dnat": (Element(_store_named(project, "dnat-range", has_host, proto), _freeze(dnat_key),
                         (str(forward.container_ip),),
                         _tag_text(project, "dnat", forward.container)),),
        "forward": (Element(_store_named(project, "forward-range", has_host, proto),
                            _freeze(accept_key), None,
                            _tag_text(project, "forward", forward.container)),),
    }


def elements_of(listing: dict) -> list[Element]:
    """The elements of a listed map or set object (``{"map": {...}}``)."""
    (kind, body), = ((k, v) for k, v in listing.items() if k in ("map", "set"))
    found = []
    for item in body.get("elem", []):
        data = None
        if kind == "map":
            if not isinstance(item, list) or len(item) != 2:
                continue
            item, value = item
            data = tuple(value["concat"]) if isinstance(value, dict) and "concat" in value \
                else (value,)
        elem = item.get("elem", {}) if isinstance(item, dict) and "elem" in item \
            else {"val": item}
        val = elem.get("val")
        # an interval map's protocol lists as "tcp" in a table's listing, 6 in its own
        key = tuple(PROTO_NUMBERS.get(v, v) if isinstance(v, str) else _freeze(v)
                    for v in val["concat"]) \
            if isinstance(val, dict) and "concat" in val else (_freeze(val),)
        found.append(Element(body["name"], key, data, elem.get("comment")))
    return found


def parse_elements(project: str, store: Store,
                   elements: tuple[Element, ...]) -> tuple[str, Forward] | None:
    """The key (purpose, forward) whose half ``elements`` are (the address
    and port elements of a DNAT, or one accept element), or None when they
    are not what Locker writes there (another tag, another shape)."""
    first = elements[0]
    tag = parse_tag(first.comment)
    if tag is None or tag.project != project or tag.purpose != store.half \
            or tag.container is None or tag.peer is not None:
        return None
    try:
        key = list(first.key)
        if store.interval:
            forward = _range_forward(project, tag.container, store, key, first.data)
        elif store.purpose == "dnat":
            host = _address(key.pop(0)) if store.host_ip else None
            proto_number, host_port = key
            (address,), (port,) = (e.data for e in elements)
            forward = Forward(project, tag.container, host_port, _address(address), port,
                              PROTO_NAMES.get(proto_number, proto_number), host)
        else:
            host = _address(key.pop()) if store.host_ip else None
            address, port, host_port = key
            forward = Forward(project, tag.container, host_port, _address(address), port,
                              store.protocol, host)
    except (ValueError, TypeError):
        return None
    ports = (forward.host_port, forward.container_port)
    if forward.protocol not in PROTO_NUMBERS or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports):
        return None
    if forward_elements(forward)[store.half] != elements:
        return None
    return store.half, forward


def _interval(part: Any) -> tuple[int, int]:
    """(first, last) of a listed ``{"range": [first, last]}`` (frozen)."""
    (name, (first, last)), = part
    if name != "range" or not all(isinstance(p, int) and not isinstance(p, bool)
                                  for p in (first, last)):
        raise ValueError(part)
    return first, last


def _range_forward(project: str, container: str, store: Store, key: list,
                   data: tuple | None) -> Forward:
    """The forward of one element of an interval store."""
    if store.purpose == "dnat-range":
        host = _address(key.pop(0)) if store.host_ip else None
        protocol, ports = key
        (address,) = data or ()
        first, last = _interval(ports)
        return Forward(project, container, first, _address(address), first,
                       PROTO_NAMES.get(protocol, protocol), host, last - first + 1)
    host = _address(key.pop()) if store.host_ip else None
    address, ports, host_ports = key
    first, last = _interval(host_ports)
    return Forward(project, container, first, _address(address), _interval(ports)[0],
                   store.protocol, host, last - first + 1)


def range_mark(tag: Tag | None) -> tuple[int, int] | None:
    """(first, last host port) of a shifted range's element comment
    (``locker:P:web:dnat:range-8000-8010``), or None."""
    if tag is None or tag.peer is None or not tag.peer.startswith(RANGE_MARK):
        return None
    first, _, last = tag.peer[len(RANGE_MARK):].partition("-")
    if not (first.isdigit() and last.isdigit()) or int(first) >= int(last):
        return None
    return int(first), int(last)


def parse_range_group(project: str, store: Store,
                      elements: tuple[Element, ...]) -> tuple[str, Forward] | None:
    """The key (purpose, forward) of a shifted range whose elements (of one
    comment; for a DNAT its address and port elements) are ``elements``,
    or None unless they are exactly those Locker writes for it."""
    tag = parse_tag(elements[0].comment)
    mark = range_mark(tag)
    if mark is None or tag.project != project or tag.purpose != store.half \
            or tag.container is None or store.interval:
        return None
    first, last = mark
    try:
        if store.purpose == "dnat":
            start = next(e for e in elements if e.store == store.name and e.key[-1] == first)
            port = next(e.data[0] for e in elements
                        if e.store != store.name and e.key == start.key)
            host = _address(start.key[0]) if store.host_ip else None
            forward = Forward(project, tag.container, first, _address(start.data[0]), port,
                              PROTO_NAMES.get(start.key[-2], start.key[-2]), host,
                              last - first + 1)
        else:
            start = next(e for e in elements if e.key[2] == first)
            host = _address(start.key[3]) if store.host_ip else None
            forward = Forward(project, tag.container, first, _address(start.key[0]),
                              start.key[1], store.protocol, host, last - first + 1)
    except (StopIteration, ValueError, TypeError, IndexError):
        return None
    if forward.host_port == forward.container_port:
        return None   # Locker writes such a range as one interval element
    if set(forward_elements(forward)[store.half]) != set(elements):
        return None
    return store.half, forward
