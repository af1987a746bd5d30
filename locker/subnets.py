"""Choosing a project's subnet: a pure function of the networks in use."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network

from locker.errors import BackendError

POOL_FIRST = IPv4Network("10.1.1.0/24")
POOL_LAST = IPv4Network("10.255.255.0/24")


def first_free(used: Iterable[IPv4Network]) -> IPv4Network:
    """The first /24 of the pool that overlaps none of ``used``.

    A default route (0.0.0.0/0) in ``used`` would overlap everything: leave
    it out before calling. Raises BackendError when the pool is exhausted.
    """
    # Ranges sorted by start: once a range starts past the candidate /24,
    # no later one can overlap it.
    ranges = sorted((int(n.network_address), int(n.broadcast_address)) for n in used)
    candidate = int(POOL_FIRST.network_address)
    for start, end in ranges:
        if end < candidate:
            continue
        if start > candidate + 255:
            break
        candidate = ((end >> 8) + 1) << 8
    if candidate <= int(POOL_LAST.network_address):
        return IPv4Network((candidate, 24))
    raise BackendError(
        "No free /24 is left between 10.1.1.0 and 10.255.255.0: every one "
        "overlaps a network this host can reach. Remove unused bridges or "
        "routes, or run `locker cleanup` on projects you no longer need.")
