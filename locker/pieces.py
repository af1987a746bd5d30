"""Values rebuilt from the pieces of them a firewall backend found: shared
by the shipped backends, free for third-party ones.

A backend reads its tagged rules back into *keys*: ``(purpose, project,
value)`` for a project's network rules: the network for ``NETWORK_PURPOSES``
(masquerade, hairpin), the bridge's name for ``NAME_PURPOSES`` (outbound,
replies, deny, localhost, guard), and ``(name, gateway)`` for ``isolate``.
``nat_keys`` gives the keys a Bridge's rules have, ``nat_bridges`` the
Bridges the keys found make up, ``nat_doomed`` the keys ``remove_nat``
deletes.

IPv6 (a Bridge with ``network6``): the same rules for the /64 carry the
same tags (the table or the ip6tables store says the family), and their
keys have the purpose with a ``6`` appended (``key_purpose``):
``masquerade6`` (only when ``bridge.nat6``) and ``hairpin6`` with the /64,
``outbound6``, ``replies6`` and ``deny6`` with the bridge's name,
``isolate6`` with ``(name, gateway6)``. There is no IPv6 localhost or guard
rule (IPv6 has no route_localnet: ``[::1]:PORT`` reaches no forward).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any, NamedTuple

from locker.model import UNKNOWN_NETWORK, Bridge
from locker.names import bridge_name

NETWORK_PURPOSES = ("masquerade", "hairpin")
NAME_PURPOSES = ("outbound", "replies", "deny", "localhost", "guard")
ISOLATE = "isolate"
#: The IPv6 keys' purposes (see above).
NETWORK_PURPOSES6 = ("masquerade6", "hairpin6")
NAME_PURPOSES6 = ("outbound6", "replies6", "deny6")
ISOLATE6 = "isolate6"
NAT_PURPOSES6 = NETWORK_PURPOSES6 + NAME_PURPOSES6 + (ISOLATE6,)
#: Every tag purpose of a project's network rules (its nat value).
NAT_PURPOSES = NETWORK_PURPOSES + NAME_PURPOSES + (ISOLATE,)
#: Every key purpose of them, both families.
KEY_PURPOSES = NAT_PURPOSES + NAT_PURPOSES6


def key_purpose(purpose: str, family: int) -> str:
    """The key's purpose of a rule tagged ``purpose`` in ``family`` (4 or 6)."""
    return purpose + "6" if family == 6 else purpose


def tag_purpose(purpose: str) -> tuple[str, int]:
    """The tag's purpose and the family of a key's purpose."""
    return (purpose[:-1], 6) if purpose in NAT_PURPOSES6 else (purpose, 4)


class NatKey(NamedTuple):
    """A key of a project's network rule, by name (it equals the plain
    tuple a backend builds)."""

    purpose: str
    project: str
    value: Any  # network, bridge name, or (name, gateway) for isolate


def _nat_only(keys: Iterable[tuple]) -> list[NatKey]:
    """The keys of network rules (both families) among a backend's keys of
    every kind."""
    return [NatKey(*key) for key in keys if key and key[0] in KEY_PURPOSES]


def nat_keys(bridge: Bridge) -> set[tuple]:
    """The keys of the rules ``add_nat([bridge])`` writes."""
    keys = {(p, bridge.project, bridge.network) for p in NETWORK_PURPOSES}
    keys |= {(p, bridge.project, bridge.name) for p in NAME_PURPOSES}
    if bridge.isolated:
        keys.add((ISOLATE, bridge.project, (bridge.name, _gateway(bridge.network))))
    if bridge.network6 is not None:
        keys |= {(p, bridge.project, bridge.network6) for p in NETWORK_PURPOSES6
                 if bridge.nat6 or p != "masquerade6"}
        keys |= {(p, bridge.project, bridge.name) for p in NAME_PURPOSES6}
        if bridge.isolated:
            keys.add((ISOLATE6, bridge.project, (bridge.name, bridge.gateway6)))
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
    Each of these is combined with each /64 that a ``masquerade6`` or
    ``hairpin6`` key names (``nat6`` when its masquerade6 is there), or
    with no IPv6 when none does.
    """
    complete, partial = set(), set()
    found = _nat_only(keys)
    for project in {key.project for key in found}:
        mine = {key for key in found if key.project == project}
        networks = {key.value for key in mine if key.purpose in NETWORK_PURPOSES}
        isolates = {key.value for key in mine if key.purpose == ISOLATE}
        names = {key.value for key in mine if key.purpose in NAME_PURPOSES + NAME_PURPOSES6} \
            | {name for name, _ in isolates} \
            | {key.value[0] for key in mine if key.purpose == ISOLATE6}
        networks6 = {key.value for key in mine if key.purpose in NETWORK_PURPOSES6}
        for network in networks or {UNKNOWN_NETWORK}:
            for name in names or {bridge_name(project)}:
                isolated = (name, _gateway(network)) in isolates if networks \
                    else any(n == name for n, _ in isolates)
                for network6 in networks6 or {None}:
                    nat6 = network6 is None or ("masquerade6", project, network6) in mine
                    bridge = Bridge(project, name, network, isolated, network6, nat6)
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
    are that network's rules too: one bridge name per project). The same
    for IPv6: the /64's masquerade6 and hairpin6 and its isolate6, and,
    unless an IPv4 network of the project stays, every IPv6 network rule of
    the project."""
    bridges = list(bridges)
    doomed: set[tuple] = set()
    for bridge in bridges:
        doomed |= {(p, bridge.project, bridge.network) for p in NETWORK_PURPOSES}
        doomed.add((ISOLATE, bridge.project, (bridge.name, _gateway(bridge.network))))
        if bridge.network6 is not None:
            doomed |= {(p, bridge.project, bridge.network6) for p in NETWORK_PURPOSES6}
            doomed.add((ISOLATE6, bridge.project, (bridge.name, bridge.gateway6)))
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
        mine6 = [key for key in found if key.purpose in NAT_PURPOSES6
                 and key.project == bridge.project]
        # without IPv4 network rules left, no IPv6 rule of the project stays either
        doomed |= {key for key in mine6 if key.purpose in NETWORK_PURPOSES6
                   or (key.purpose in NAME_PURPOSES6 and key.value == bridge.name)
                   or (key.purpose == ISOLATE6 and key.value[0] == bridge.name)}
        if bridge.network6 is not None:
            doomed |= {(p, bridge.project, bridge.name) for p in NAME_PURPOSES6}
    return doomed


def _gateway(network: IPv4Network | IPv6Network) -> IPv4Address | None:
    """The network's first address (None for ``UNKNOWN_NETWORK``)."""
    return network[1] if network.num_addresses > 2 else None
