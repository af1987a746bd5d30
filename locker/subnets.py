"""Choosing a project's subnet: pure functions of the host's networks.

Link backends read the kernel's facts (``Address``, ``Route``) and hand
them here, so that every backend applies the same rules:

**The pool.** Subnets are /24s of the pool, handed out lowest first. The
default pool, ``DEFAULT_POOL`` (10.0.0.0/8), offers 10.1.1.0/24 to
10.255.255.0/24: 10.0.x.0/24 and 10.1.0.0/24 stay free, since lxcbr0
(10.0.3.0/24) and many home and office networks live there. Any other pool
(the host file's ``subnets:``, for example 10.200.0.0/16) offers all of its
/24s, from its first (10.200.0.0/24) to its last (10.200.255.0/24). A
pool's prefix is at most /24, and it lies in RFC 1918 space.

**Used networks.** A /24 is used when it overlaps

- an IPv4 address on any interface, up or down (its network; for a
  point-to-point address, the peer's network too);
- the destination of any route in any routing table, of any type
  (blackhole, unreachable and host routes included), except catch-alls
  (the routes the kernel adds for an address are left out: the address
  already counts);
- a network the core reserves (the subnets its host state records for
  other projects' bridges, which count even while such a bridge is down or
  gone).

**Catch-all routes.** A default route (``/0``) says where to send what no
other route claims; it blocks nothing. A route wider than a /8 (``/1`` to
``/7``) is a catch-all too when the routes of that width in its table
together cover all of IPv4: that is a *split default route*, such as the
``0.0.0.0/1`` + ``128.0.0.0/1`` pair of OpenVPN's ``def1`` or of a WireGuard
peer with ``AllowedIPs = 0.0.0.0/1, 128.0.0.0/1``. A bridge's own /24 route
is more specific, so it takes only the bridge's addresses out of the VPN,
exactly as it does with a plain default route. A wide route that is not
part of such a cover (``10.0.0.0/7`` via a company router, a lone
``0.0.0.0/1``) is the only route to its addresses other than the default
and blocks every /24 it covers, like any narrower route.

An existing bridge keeps its subnet, inside the pool or not;
``conflicts`` names what has come to overlap it since.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, collapse_addresses

from locker.errors import BackendError

DEFAULT_POOL = IPv4Network("10.0.0.0/8")
#: The first and last /24 the default pool offers.
POOL_FIRST = IPv4Network("10.1.1.0/24")
POOL_LAST = IPv4Network("10.255.255.0/24")
#: Routes with a shorter prefix than this may be catch-alls.
WIDE_ROUTE_PREFIX = 8
PRIVATE = tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
EVERYTHING = IPv4Network("0.0.0.0/0")
#: How many users of an exhausted pool its error names.
NAMED_IN_ERROR = 6


@dataclass(frozen=True)
class Address:
    """An IPv4 address on an interface (``ip addr``): ``peer`` is the other
    end of a point-to-point address."""

    interface: str
    address: IPv4Interface
    peer: IPv4Interface | None = None

    def uses(self) -> list[Use]:
        found = [Use(self.address.network, f"address {self.address} on {self.interface}")]
        if self.peer is not None and self.peer.network != self.address.network:
            found.append(Use(self.peer.network,
                             f"peer {self.peer} of {self.address.ip} on {self.interface}"))
        return found


@dataclass(frozen=True)
class Route:
    """An IPv4 route as ``ip route show table all`` lists it. ``kind`` is
    the route type (``unicast``, ``blackhole``, ``local``, ...); ``table``
    the table's name or number; ``devices`` and ``gateways`` those of every
    next hop; ``protocol`` who made it (``kernel`` for the routes the
    kernel adds for an address; ``ip route add`` makes ``boot`` ones)."""

    network: IPv4Network
    table: str = "main"
    kind: str = "unicast"
    gateways: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    protocol: str = "boot"

    @property
    def implied(self) -> bool:
        """Made by the kernel for an address, which counts by itself."""
        return self.protocol == "kernel"

    def __str__(self) -> str:
        words = ["route"]
        if self.kind != "unicast":
            words.append(self.kind)
        words.append("default" if self.network.prefixlen == 0 else str(self.network))
        for gateway in self.gateways:
            words += ["via", gateway]
        for device in dict.fromkeys(self.devices):
            words += ["dev", device]
        if self.table != "main":
            words += ["table", self.table]
        return " ".join(words)


@dataclass(frozen=True)
class Use:
    """A network that makes the /24s it overlaps used, and what it is."""

    network: IPv4Network
    what: str


def table_number(table: int) -> str:
    """A routing table's number as ``ip`` names the reserved ones."""
    return {253: "default", 254: "main", 255: "local"}.get(table, str(table))


def pool_bounds(pool: IPv4Network) -> tuple[IPv4Network, IPv4Network]:
    """The first and last /24 the pool offers (see the module docstring)."""
    problem = pool_problem(pool)
    if problem:
        raise BackendError(f"The subnet pool {pool} is {problem}.")
    if pool == DEFAULT_POOL:
        return POOL_FIRST, POOL_LAST
    subnets = 1 << (24 - pool.prefixlen)
    first = int(pool.network_address)
    return IPv4Network((first, 24)), IPv4Network((first + ((subnets - 1) << 8), 24))


def pool_problem(pool: IPv4Network) -> str | None:
    """Why ``pool`` cannot be a pool (a phrase), or None when it can."""
    if pool.prefixlen > 24:
        return "smaller than a /24; give a /24 or a wider network, like 10.200.0.0/16"
    if not any(pool.subnet_of(private) for private in PRIVATE):
        return ("not private address space; give a network inside 10.0.0.0/8, "
                "172.16.0.0/12 or 192.168.0.0/16")
    return None


def catch_alls(routes: Iterable[Route]) -> set[Route]:
    """The routes that block nothing: default routes, and routes wider than
    a /8 whose table's wide routes together cover all of IPv4."""
    found = set()
    wide: dict[str, list[Route]] = defaultdict(list)
    for route in routes:
        if route.network.prefixlen == 0:
            found.add(route)
        elif route.network.prefixlen < WIDE_ROUTE_PREFIX:
            wide[route.table].append(route)
    for table_routes in wide.values():
        if list(collapse_addresses(r.network for r in table_routes)) == [EVERYTHING]:
            found.update(table_routes)
    return found


def used_networks(addresses: Iterable[Address], routes: Iterable[Route],
                  reserved: Iterable[IPv4Network] = ()) -> list[Use]:
    """Every network that makes a /24 used (see the module docstring)."""
    routes = list(routes)
    skipped = catch_alls(routes)
    used = [use for address in addresses for use in address.uses()]
    used += [Use(route.network, str(route)) for route in routes
             if route not in skipped and not route.implied]
    used += [Use(network, f"{network}, which Locker's host state holds for another "
                          "project's bridge") for network in reserved]
    return used


def allocate(addresses: Iterable[Address], routes: Iterable[Route],
             reserved: Iterable[IPv4Network] = (),
             pool: IPv4Network = DEFAULT_POOL) -> IPv4Network:
    """The first free /24 of ``pool`` given the host's facts; what a link
    backend's ``allocate_subnet`` returns for a bridge that has no subnet."""
    return first_free(used_networks(addresses, routes, reserved), pool)


def first_free(used: Iterable[IPv4Network | Use], pool: IPv4Network = DEFAULT_POOL
               ) -> IPv4Network:
    """The first /24 of the pool that overlaps none of ``used``.

    ``used`` holds networks or ``Use`` values (which the error can name);
    leave default routes out before calling, since 0.0.0.0/0 overlaps
    everything. Raises BackendError when the pool is exhausted, naming the
    networks that use it.
    """
    uses = [u if isinstance(u, Use) else Use(u, str(u)) for u in used]
    first, last = pool_bounds(pool)
    # Ranges sorted by start: once a range starts past the candidate /24,
    # no later one can overlap it.
    ranges = sorted((int(u.network.network_address), int(u.network.broadcast_address))
                    for u in uses)
    candidate = int(first.network_address)
    for start, end in ranges:
        if end < candidate:
            continue
        if start > candidate + 255:
            break
        candidate = ((end >> 8) + 1) << 8
    if candidate <= int(last.network_address):
        return IPv4Network((candidate, 24))
    raise BackendError(_exhausted(first, last, uses))


def _exhausted(first: IPv4Network, last: IPv4Network, uses: Sequence[Use]) -> str:
    low, high = int(first.network_address), int(last.broadcast_address)
    inside = sorted({u for u in uses
                     if int(u.network.broadcast_address) >= low
                     and int(u.network.network_address) <= high},
                    key=lambda u: (int(u.network.network_address), u.network.prefixlen, u.what))
    named = "; ".join(u.what for u in inside[:NAMED_IN_ERROR])
    if len(inside) > NAMED_IN_ERROR:
        named += f"; and {len(inside) - NAMED_IN_ERROR} more"
    return (f"No free /24 is left in the subnet pool {first.network_address} to "
            f"{last.network_address}: every one overlaps a network in use ({named}). "
            "Remove what is no longer needed (`locker cleanup` for projects you no longer "
            "use), or move the pool with `subnets:` in the host configuration file "
            "(/etc/locker/locker.yaml).")


def conflicts(network: IPv4Network, bridge: str, addresses: Iterable[Address],
              routes: Iterable[Route]) -> list[str]:
    """What overlaps an existing bridge's ``network`` apart from the bridge
    itself: addresses on other interfaces and routes not only through the
    bridge (catch-alls left out), each as a short phrase."""
    routes = list(routes)
    skipped = catch_alls(routes)
    found = [use.what for address in addresses if address.interface != bridge
             for use in address.uses() if use.network.overlaps(network)]
    found += [str(route) for route in routes
              if route not in skipped and not route.implied and route.network.overlaps(network)
              and not (route.devices and set(route.devices) == {bridge})]
    return list(dict.fromkeys(found))
