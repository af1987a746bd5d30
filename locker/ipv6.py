"""IPv6 addresses of the projects that opt in (``ipv6: true``): pure
functions from the host's ULA prefix and a project's IPv4 subnet.

- The host prefix is a /48 ``fdXX:XXXX:XXXX::/48`` (RFC 4193: ``fd`` and a
  40-bit random global ID), made once and kept in the state directory's
  ``host-id`` file (``locker.state.host_prefix``), or the host file's
  ``ipv6_prefix``.
- A project's /64 is the /48 and a 16-bit subnet ID taken from its IPv4
  subnet: ``10.A.B.0/24`` gives subnet ID ``A*256+B`` (the second and third
  octets), so it is stable and unique whenever the IPv4 subnet is.
- The bridge holds ``::1`` of the /64; a container ``::N``, N the last
  octet of its IPv4 address.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from locker.errors import Invalid

ULA = IPv6Network("fc00::/7")
PREFIX_LENGTH = 48
SUBNET_LENGTH = 64


def parse_prefix(text: str) -> IPv6Network:
    """A host prefix as written (``fd00:1234:5678::/48``): a /48 inside
    fc00::/7, without host bits; else ``Invalid`` saying what to write."""
    raw = text.strip()
    try:
        prefix = IPv6Network(raw, strict=False)
    except ValueError:
        raise Invalid("not an IPv6 prefix; give a /48 unique local prefix like "
                      "fd00:1234:5678::/48") from None
    if "/" not in raw or prefix.prefixlen != PREFIX_LENGTH:
        raise Invalid(f"is not a /48; give a /48 unique local prefix like "
                      f"{IPv6Network((int(prefix.network_address), 48), strict=False)}")
    if prefix != _strict(raw):
        raise Invalid(f"has host bits set; did you mean {prefix}?")
    if not prefix.subnet_of(ULA):
        raise Invalid("is not a unique local prefix (inside fc00::/7); give one like "
                      "fd00:1234:5678::/48")
    return prefix


def _strict(raw: str) -> IPv6Network | None:
    try:
        return IPv6Network(raw)
    except ValueError:
        return None


def prefix_from_global_id(global_id: int) -> IPv6Network:
    """``fd`` followed by the 40-bit ``global_id``, as a /48."""
    if not 0 <= global_id < 1 << 40:
        raise Invalid(f"global ID {global_id!r} is not 40 bits")
    return IPv6Network(((0xFD << 120) | (global_id << 80), PREFIX_LENGTH))


def random_prefix() -> IPv6Network:
    """A fresh RFC 4193 prefix from 40 random bits."""
    return prefix_from_global_id(int.from_bytes(os.urandom(5), "big"))


def subnet_id(network: IPv4Network) -> int:
    """The 16-bit subnet ID of a project's IPv4 subnet: its second and
    third octets (``10.A.B.0/24`` gives ``A*256+B``)."""
    return (int(network.network_address) >> 8) & 0xFFFF


def project_network(prefix: IPv6Network, network: IPv4Network) -> IPv6Network:
    """The project's /64 in ``prefix`` for its IPv4 subnet ``network``."""
    if prefix.prefixlen != PREFIX_LENGTH:
        raise Invalid(f"IPv6 prefix {prefix} is not a /48")
    return IPv6Network((int(prefix.network_address) | (subnet_id(network) << 64), SUBNET_LENGTH))


def gateway(network6: IPv6Network) -> IPv6Address:
    """The bridge's address: ``::1`` of the /64."""
    return network6[1]


def container_address(network6: IPv6Network, address: IPv4Address) -> IPv6Address:
    """A container's IPv6 address: ``::N``, N the last octet of its IPv4
    address, so it follows the IPv4 address and is stable with it."""
    return network6[int(address) & 0xFF]


def family(address: IPv4Address | IPv6Address) -> int:
    """4 or 6."""
    return address.version


def bracketed(address: IPv4Address | IPv6Address) -> str:
    """The address as it goes before ``:PORT``: IPv6 in brackets."""
    return f"[{address}]" if address.version == 6 else str(address)


def parse_address(text: str) -> IPv4Address | IPv6Address:
    """An address of either family (``ipaddress.ip_address``)."""
    return ip_address(text)
