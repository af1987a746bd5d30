"""Values rebuilt from the pieces of them a firewall backend found: shared
by the shipped backends, free for third-party ones.

A backend reads its tagged rules back into *keys*: ``(purpose, project,
value)`` for a project's network rules: the network for ``NETWORK_PURPOSES``
(masquerade, hairpin), the bridge's name for ``NAME_PURPOSES`` (outbound,
replies, deny, localhost, guard), and ``(name, gateway)`` for ``isolate``.
``nat_keys`` gives the keys a Bridge's rules have, ``nat_bridges`` the
Bridges the keys found make up, ``nat_doomed`` the keys ``remove_nat``
deletes.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network
from typing import Any, NamedTuple

from locker.model import UNKNOWN_NETWORK, Bridge
from locker.names import bridge_name

NETWORK_PURPOSES = ("masquerade", "hairpin")
NAME_PURPOSES = ("outbound", "replies", "deny", "localhost", "guard")
ISOLATE = "isolate"
#: Every purpose of a project's network rules (its nat value).
NAT_PURPOSES = NETWORK_PURPOSES + NAME_PURPOSES + (ISOLATE,)


class NatKey(NamedTuple):
    """A key of a project's network rule, by name (it equals the plain
    tuple a backend builds)."""

    purpose: str
    project: str
    value: Any  # network, bridge name, or (name, gateway) for isolate


def _nat_only(keys: Iterable[tuple]) -> list[NatKey]:
    """The keys of network rules among a backend's keys of every kind."""
    return [NatKey(*key) for key in keys if key and key[0] in NAT_PURPOSES]


def nat_keys(bridge: Bridge) -> set[tuple]:
    """The keys of the rules ``add_nat([bridge])`` writes."""
    keys = {(p, bridge.project, bridge.network) for p in NETWORK_PURPOSES}
    keys |= {(p, bridge.project, bridge.name) for p in NAME_PURPOSES}
    if bridge.isolated:
        keys.add((ISOLATE, bridge.project, (bridge.name, _gateway(bridge.network))))
    return keys


def nat_bridges(keys: set) -> tuple[set[Bridge], set[Bridge]]:
    """Bridges whose rules are all there, and the partial ones.

    A project's pieces combine as: each network that a masquerade or a
    hairpin rule names with each bridge name that a rule of
    ``NAME_PURPOSES`` or an isolate rule names (the project's
    ``bridge_name`` when none does); the Bridge is ``isolated`` when the
    isolate rule of that name and the network's gateway is there, and
    complete when every rule of ``nat_keys`` is. Without any masquerade or
    hairpin, each name gives ``Bridge(project, name, UNKNOWN_NETWORK)``
    (``isolated`` when an isolate rule of the name is there); otherwise an
    isolate rule whose gateway is no network's found gives
    ``Bridge(project, name, UNKNOWN_NETWORK, isolated=True)``, partial.
    """
    complete, partial = set(), set()
    found = _nat_only(keys)
    for project in {key.project for key in found}:
        mine = {key for key in found if key.project == project}
        networks = {key.value for key in mine if key.purpose in NETWORK_PURPOSES}
        isolates = {key.value for key in mine if key.purpose == ISOLATE}
        names = {key.value for key in mine if key.purpose in NAME_PURPOSES} \
            | {name for name, _ in isolates}
        for network in networks or {UNKNOWN_NETWORK}:
            for name in names or {bridge_name(project)}:
                isolated = (name, _gateway(network)) in isolates if networks \
                    else any(n == name for n, _ in isolates)
                bridge = Bridge(project, name, network, isolated)
                whole = network in networks and nat_keys(bridge) <= mine
                (complete if whole else partial).add(bridge)
        gateways = {_gateway(network) for network in networks}
        for name, gateway in isolates:
            if networks and gateway not in gateways:
                partial.add(Bridge(project, name, UNKNOWN_NETWORK, True))
    return complete, partial


def nat_doomed(bridges: Iterable[Bridge], keys: set) -> set[tuple]:
    """The keys ``remove_nat(bridges)`` deletes, given the keys found: each
    bridge's masquerade and hairpin, the isolate rule of its name and
    gateway; and its rules that name only the bridge (outbound, replies,
    deny, localhost, guard, and isolate rules of any gateway) unless a
    masquerade or hairpin of another network of the project stays (they
    are that network's rules too: one bridge name per project)."""
    bridges = list(bridges)
    doomed: set[tuple] = set()
    for bridge in bridges:
        doomed |= {(p, bridge.project, bridge.network) for p in NETWORK_PURPOSES}
        doomed.add((ISOLATE, bridge.project, (bridge.name, _gateway(bridge.network))))
    found = _nat_only(keys)
    staying_networks = [key for key in found
                        if key.purpose in NETWORK_PURPOSES and key not in doomed]
    staying = {key.project for key in staying_networks}
    staying_gateways = {(key.project, _gateway(key.value)) for key in staying_networks}
    for bridge in bridges:
        isolates = [key for key in found if key.purpose == ISOLATE
                    and key.project == bridge.project and key.value[0] == bridge.name]
        if bridge.project in staying:
            # isolate rules of a gateway no staying network has are this bridge's
            doomed |= {key for key in isolates
                       if (key.project, key.value[1]) not in staying_gateways}
            continue
        doomed |= {(p, bridge.project, bridge.name) for p in NAME_PURPOSES}
        doomed |= set(isolates)
    return doomed


def _gateway(network: IPv4Network) -> IPv4Address | None:
    """The network's first address (None for ``UNKNOWN_NETWORK``)."""
    return network[1] if network.num_addresses > 2 else None
