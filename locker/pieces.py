"""Values rebuilt from the pieces of them a firewall backend found: shared
by the shipped backends, free for third-party ones.

A backend reads its tagged rules back into *keys*: ``(purpose, project,
value)`` for a project's network rules (``"masquerade"`` with the network,
``"outbound"`` and ``"replies"`` with the bridge's name).
"""

from __future__ import annotations

from locker.model import UNKNOWN_NETWORK, Bridge
from locker.names import bridge_name

NAT_PURPOSES = ("masquerade", "outbound", "replies")


def nat_bridges(keys: set) -> tuple[set[Bridge], set[Bridge]]:
    """Bridges whose masquerade, outbound and replies are all there, and
    the partial ones.

    A project's pieces combine as: each masquerade network with each bridge
    name that an outbound or a replies rule names (the project's
    ``bridge_name`` when none does); a name with both is complete. Without
    any masquerade, each name gives ``Bridge(project, name,
    UNKNOWN_NETWORK)``.
    """
    complete, partial = set(), set()
    for project in {k[1] for k in keys if k[0] in NAT_PURPOSES}:
        def of(purpose: str) -> set:
            return {k[2] for k in keys if k[0] == purpose and k[1] == project}
        networks, outbound, replies = of("masquerade"), of("outbound"), of("replies")
        names = (outbound | replies) or {bridge_name(project)}
        for network in networks or {UNKNOWN_NETWORK}:
            for name in names:
                whole = network in networks and name in outbound and name in replies
                (complete if whole else partial).add(Bridge(project, name, network))
    return complete, partial
