"""The hooks a Locker plugin implements: the whole contract in one place.

A firewall backend (entry point group ``locker.firewall``) implements every
hook under *Firewall*; a link backend (``locker.link``) every hook under
*Link*; an observer (``locker.plugins``) any of the hooks under *Events*.
A backend may also observe events, but never implements another role's
hooks. Exactly one firewall and one link backend are active at a time, so
each operation hook has exactly one implementation when it is called.

What the core checks when it loads a backend (a clear error names the
plugin and the hook otherwise): the class attribute ``locker_api`` equals
``locker.PLUGIN_API`` (the plugin API this contract describes, now 2);
every hook of its role is implemented; no ``@hookimpl`` names a hook that
does not exist (a misspelt one); no hook of another role is implemented.

What the core guarantees, so backends need not check or lock:

- Values are valid by construction: ``Bridge``, ``Forward`` and ``Link``
  check themselves when made (``locker.model``), so an invalid one never
  exists: names are Locker names, ports 1 to 65535, protocols in
  ``locker.PROTOCOLS``, addresses IPv4, a bridge's name an interface name
  (the core gives ``locker.bridge_name(project)``). A backend reading the
  kernel treats a rule that does not make a valid value (``Invalid``, a
  ValueError) as unrecognised.
- The host lock (``locker.hostlock``) is held around every hook call that
  changes the kernel, together with the ``list_rules`` it was computed
  from; two Locker commands never interleave their changes. Backends need
  no lock of their own against Locker, only against other tools (the
  iptables backend takes ``/run/xtables.lock``).
- Hooks are called with keyword arguments, as ``manager.hook.NAME(...)``.

Rules common to every hook that changes the kernel:

- It takes a batch (possibly empty: then it does nothing) and applies it as
  one kernel transaction where the interface allows it (one nft batch, one
  libiptc commit per table). If it raises, the kernel is as it was before
  the call. Where one change needs two transactions, the next call of any
  adding or removing hook completes or undoes what a crash in between left
  (``locker.faults.point("rules-half-applied")`` marks the place).
- It is idempotent: adding what exists or removing what does not is not an
  error and changes nothing. Adding also completes what is partly there;
  removing also removes what is partly there.
- Every adding hook creates Locker's chains and exactly one jump into each
  when they are missing (``add_link`` too, not only ``add_nat``), and
  removes duplicate jumps.
- It touches only what carries Locker's marks: ``locker.Tag`` comments on
  rules, ``locker.JUMP_COMMENT`` on the jumps into Locker's chains, the
  alias ``locker.bridge_alias(project)`` on bridges. Another tool's rules,
  tables, chains and interfaces keep their content and their order, and so
  do another project's.
- It raises ``locker.BackendError`` with a sentence an administrator can
  act on; any other exception is reported as a bug in the plugin.

Reading (``list_rules``): a value is listed as complete only when all of
its rules are there, as partial when some are; rules with Locker's tag that
Locker would not write are listed as unrecognised; ``jumps`` is True only
when every chain and exactly one jump into each is there.

Hooks marked *first result* return one value; the others return nothing.
Backends are imported only when selected: import heavy libraries inside the
hook implementations or the plugin's constructor, not at module level.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

import pluggy

from locker.model import Availability, Blocker, Bridge, BridgeState, Forward, Link, Ruleset

PROJECT_NAME = "locker"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

# ---------------------------------------------------------------- Firewall


@hookspec(firstresult=True)
def firewall_availability() -> Availability:
    """Tell whether this firewall backend can work on this host.

    Called by ``locker backends`` and by auto-detection, before any other
    hook of the backend. Must not change the kernel's lasting state (a test
    table created and deleted at once is fine) and must not raise: a missing
    library or kernel feature is ``Availability(usable=False, reason=...)``.
    *First result.*
    """


@hookspec
def add_nat(bridges: Sequence[Bridge]) -> None:
    """Ensure each project's network rules (its nat value, tag
    ``Tag(project, PURPOSE)``):

    - masquerade: traffic from ``bridge.network`` to elsewhere;
    - outbound: accept forwarding from the bridge outward; replies: accept
      established and related traffic back in;
    - deny (in ``LOCKER_ISOLATION``): drop new connections into the bridge
      from any other interface that were not DNATed (not a forward) and
      are no replies, whatever the FORWARD policy and whatever another
      project's rules accept;
    - hairpin: masquerade DNATed traffic from ``bridge.network`` back into
      it (a container reaching a forward through a host address);
    - localhost: masquerade traffic from 127.0.0.0/8 leaving through the
      bridge (forwards reached at 127.0.0.1 from the host itself; the link
      backend sets ``route_localnet`` on the bridge);
    - guard (in ``LOCKER_INPUT``): drop packets from the bridge to
      127.0.0.0/8 that open a connection (CVE-2020-8558);
    - isolate (in ``LOCKER_INPUT``, only when ``bridge.isolated``): drop new
      connections from the bridge to the host's addresses other than
      ``bridge.gateway``.

    With ``bridge.network6`` the same rules for IPv6, in the same
    transaction (nftables: the table ``ip6 locker`` with the same chains):
    masquerade of ``network6`` (only when ``bridge.nat6``; else routed),
    outbound, replies, deny, hairpin, and isolate (other than
    ``bridge.gateway6``; it drops conntrack state NEW only, since neighbour
    discovery is untracked and must still reach the host: "not established
    or related" would drop it); no localhost and no guard (IPv6 has no
    route_localnet). Their keys: ``locker.pieces`` (``masquerade6``, ...).
    The conformance suite's IPv6 cases (``firewall_suite.IPV6_TESTS``)
    check them.
    A backend that cannot do IPv6 raises ``BackendError`` for a bridge with
    ``network6`` saying so, before it changes anything.

    Called by ``start`` once the bridge exists, and by every repair. Also
    creates Locker's entry points if they are missing, each jump once, and
    removes duplicate jumps: ``LOCKER_FORWARD`` (from the forward hook),
    whose first two rules are ``jump LOCKER_USER`` and ``jump
    LOCKER_ISOLATION``; ``LOCKER_USER``, the administrator's chain, created
    empty and otherwise never flushed, changed or deleted; ``LOCKER_ISOLATION``;
    ``LOCKER_INPUT`` (from the input hook); ``LOCKER_PREROUTING`` (from
    prerouting and from the nat output hook, for local destinations only,
    so that forwards work from the host itself); and whatever else the
    backend's design needs, such as a postrouting chain. The jumps carry
    the comment ``LOCKER``. For each bridge's project, also the project's
    own chains (and maps or sets) with the one dispatch rule into each
    (tag ``Tag(project, "dispatch")``), if the backend keeps a project's
    rules in chains of its own: after it, ``list_rules`` reports
    ``jumps=True``. Every adding hook also moves the rules of the projects
    it touches that are still in a backend's older layout into the current
    one, in the same transaction, and adds the entry points of the current
    layout. A bridge listed as partial gets only its missing rules.
    """


@hookspec
def remove_nat(bridges: Sequence[Bridge]) -> None:
    """Remove the network rules ``add_nat`` would add for these bridges,
    also where only some of them are there (partial): the masquerade and
    hairpin of ``bridge.network`` and the isolate rule of its gateway, and
    the rules that name only the bridge (outbound, replies, deny, localhost,
    guard, isolate of any gateway) unless another network's masquerade or
    hairpin of the project stays (``locker.pieces.nat_doomed``). Called by
    the repair when a project's bridge moved to another subnet or its
    ``isolated`` changed, so that the old value's rules do not stay behind,
    and for partial nat values that are not wanted (one with
    ``model.UNKNOWN_NETWORK`` removes the rules that name the bridge when
    no masquerade or hairpin of the project is there). Keeps the chains
    and jumps, and never touches ``LOCKER_USER``."""


@hookspec
def add_forward(forwards: Sequence[Forward]) -> None:
    """Add port forwards: for each, a DNAT in ``LOCKER_PREROUTING`` (only for
    packets to a local address, and to ``host_ip`` when it is set) and an
    accept in ``LOCKER_FORWARD`` for the translated traffic.
    ``LOCKER_PREROUTING`` is entered from prerouting and from the nat
    output hook, so a forward also works for connections from the host
    itself to a local address (``host_ip`` 127.0.0.1 too: the project's
    localhost rule masquerades them); a DNATed connection passes the
    project's deny rule, and is still dropped by a drop in ``LOCKER_USER``.

    An IPv6 forward (``forward.family`` 6: ``container_ip`` and ``host_ip``
    IPv6) goes into the backend's IPv6 rules; ``[::1]`` never reaches it.

    Called by ``start`` and ``ports`` with the forwards that are missing or
    partial: of a partial forward only the missing rules are added. Creates
    the chains and jumps if they are missing. Each rule's comment is
    ``Tag(project, "dnat" | "forward", container)``.
    """


@hookspec
def remove_forward(forwards: Sequence[Forward]) -> None:
    """Remove port forwards: the rules that ``add_forward`` would add for
    them, also the rules of a forward that is only partly there. Called by
    ``stop``, ``ports`` (stale ones) and ``rmports``.
    """


@hookspec
def add_link(links: Sequence[Link]) -> None:
    """Accept traffic between ``link.container_ip`` and ``link.peer_ip``, in
    both directions, in ``LOCKER_FORWARD``.

    An IPv6 link (``link.family`` 6) goes into the backend's IPv6 rules.

    Called by ``start`` and ``links`` with the links that are missing or
    partial (of a partial one only the missing direction is added).
    Comments: ``Tag(project, "link", container, peer)`` on the rule from the
    container to the peer, ``Tag(project, "link-back", container, peer)`` on
    the rule back.
    """


@hookspec
def remove_link(links: Sequence[Link]) -> None:
    """Remove the rules ``add_link`` would add for these links, also the one
    direction of a partial link. Called by ``stop``, ``links`` (stale ones)
    and ``rmlinks``."""


@hookspec
def remove_unrecognised(project: str) -> None:
    """Remove every rule that ``list_rules(project)`` reports in
    ``unrecognised``: rules with the project's tag that are not what Locker
    would write, wherever the backend found them (also in the wrong chain),
    in one transaction per table. Rules of other projects and rules without
    a tag stay. Called by the repair before it adds what is missing, so
    that an altered rule never stays in front of the right one."""


@hookspec
def cleanup(project: str) -> None:
    """Remove every rule whose tag names ``project``: forwards, links and
    the project's network rules (deny, guard and isolate included). Keep
    the chains and the jumps: other projects may use them; never flush or
    delete ``LOCKER_USER`` while it holds rules (nor whatever holds it,
    such as the nftables table). Called by ``cleanup``."""


@hookspec(firstresult=True)
def list_rules(project: str | None) -> Ruleset:
    """Read back the rules carrying Locker's comments that are really in
    the kernel, for ``project`` or (None) for every project.

    Called by ``status``, ``ports``, ``links``, ``stop`` and every dry run
    to compare what is wanted with what is there. Rebuilds each value from
    the kernel's rules (addresses, ports, protocol from the matches;
    project, container and peer from the tag), so that the rules for
    ``add_forward([f])`` list back as exactly ``f``. A value is listed in
    ``forwards``/``links``/``nat`` only when all of its rules are there;
    when some are, it is listed in ``partial`` (an altered rule that still
    reads back into a value counts for that value: see ``Ruleset``). A
    rule whose tag is Locker's but that is not a rule Locker would write
    (it cannot be parsed back, or parses to something its tag does not
    name, or sits in the wrong chain) is listed in ``unrecognised``.
    ``jumps`` and ``entry_missing`` describe Locker's chains and the jumps
    into them (see ``Ruleset``), and, for a project that has anything in
    the kernel, its own chains, maps or sets and the dispatch rules into
    them, and rules of it still in an older layout (``status`` shows them;
    the next adding hook moves them). Reads only Locker's own tables or
    chains: for a project, only the entry points and that project's own
    objects, as far as the kernel interface allows (the backend's README
    says what it reads).

    *One read per command.* The core calls ``list_rules(project)`` first in
    every section it runs under its host lock (``bring_up``, ``repair``,
    ``remove`` in ``locker.ops.network``, the removal of ``cleanup``), then
    the changing hooks for that project. A backend may keep what that call
    read and let those hooks work on it, kept up to date with what they
    commit, instead of reading the kernel again; the next ``list_rules``
    call reads the kernel anew and replaces it, so nothing read survives
    the host lock. A changing hook called without such a read (for another
    project, for several, or by a caller that did not list first) reads
    the kernel itself. *First result.*
    """


@hookspec(firstresult=True)
def find_blockers(bridges: Sequence[Bridge]) -> list[Blocker]:
    """What of other tools', where this backend can see it, drops the
    traffic that Locker's rules accept for these bridges: a base chain of
    another nftables table (families ip and inet) at the forward hook with
    policy drop or an unconditional drop/reject rule that does not accept
    the bridge's traffic first, the FORWARD policy DROP of the iptables
    store this backend does not use, a running firewalld or an active ufw
    (``locker.blockers`` has the shared checks and says which rules count
    as accepting a bridge). One Blocker per place and bridge; its ``fix``
    is the command that accepts the bridge's traffic there, and once it
    ran the place is no longer reported. Reads only, never loads a kernel
    module or rule store by asking; cheap (it runs on every ``start`` and
    ``status``); an empty list when nothing is seen or ``bridges`` is
    empty. *First result.*
    """


# -------------------------------------------------------------------- Link


@hookspec(firstresult=True)
def link_availability() -> Availability:
    """Tell whether this link backend can work on this host; as
    ``firewall_availability``. *First result.*"""


@hookspec(firstresult=True)
def allocate_subnet(bridge: str, pool: IPv4Network,
                    reserved: Sequence[IPv4Network]) -> IPv4Network:
    """Choose the subnet for a project's bridge.

    If the bridge exists and has an IPv4 address, return that address's
    network: an existing bridge keeps its subnet, even outside ``pool``. An
    interface of that name that is not a bridge, or a bridge with an alias
    that is not the project's mark (see ``ensure_bridge``), is a
    ``BackendError``, as ``ensure_bridge`` would refuse it anyway; a bridge
    without any alias is not refused here (``ensure_bridge`` with ``adopt``
    decides about it).

    Otherwise read the host's IPv4 addresses (every interface, up or down)
    and routes (every table, every type) as ``locker.subnets.Address`` and
    ``locker.subnets.Route`` values and return
    ``locker.subnets.allocate(addresses, routes, reserved, pool)``, which
    applies the rules every backend shares (catch-all routes such as
    default routes and a split default like ``0.0.0.0/1`` +
    ``128.0.0.0/1`` block nothing; see that module). ``pool`` is the
    network to take /24s from (``locker.subnets.DEFAULT_POOL`` unless the
    host file's ``subnets:`` moves it); ``reserved`` the subnets the core's
    host state holds for other projects' bridges, used even while such a
    bridge is down, has lost its address or is gone. Changes nothing.

    Called by ``start`` before ``ensure_bridge``; the core holds a host-wide
    lock across both, so two projects never get the same subnet. Raises
    ``BackendError`` when the pool is exhausted, naming what uses it.
    *First result.*
    """


@hookspec(firstresult=True)
def ensure_bridge(bridge: Bridge, adopt: bool) -> BridgeState:
    """Make sure the bridge exists, holds ``bridge.interface`` and is up.

    Owner mark: Locker's bridges carry the interface alias
    ``locker.names.bridge_alias(bridge.project)`` (``locker:<project>``;
    ``IFLA_IFALIAS``, what ``ip link set dev NAME alias TEXT`` sets and
    ``ip -d link`` shows). A bridge it creates gets the alias at once; the
    kernel ignores an alias sent with the creation itself, so set it in a
    second request, and if that fails delete the bridge again. A bridge is
    Locker's when ``locker.names.is_locker_bridge(name, alias)`` holds.
    Between creating the bridge and setting its alias, call
    ``locker.faults.point("bridge-created")``.

    ``adopt`` True: the core recorded that it was creating this bridge and
    was killed before the alias was set. A bridge of that name without any
    alias is then the one Locker made: set the alias and use it as an
    existing bridge of Locker's (it keeps an address it has). A bridge with
    any other alias, or a non-bridge interface, is still refused. With
    ``adopt`` False a bridge without alias is refused like any other.

    Every bridge it returns has ``net.ipv4.conf.NAME.route_localnet`` on
    (``locker.link.rules.ensure_route_localnet``), on that bridge only,
    never on ``all``, ``default`` or another interface: forwards reached at
    127.0.0.1 from the host need it, and the firewall backend's guard rule
    (see ``add_nat``) drops what would abuse it (CVE-2020-8558). A failure
    to set it is a ``BackendError``, and a bridge created by this call is
    deleted again.

    An existing bridge of Locker's is left as it is apart from being brought
    up (given ``bridge.interface`` if it has no IPv4 address, and
    ``route_localnet`` if it is off); the returned state says what it
    really has.

    IPv6 (``bridge.network6`` set): the bridge also gets
    ``bridge.interface6`` (``::1/64``, ``nodad``), with
    ``net.ipv6.conf.NAME.disable_ipv6=0`` and ``accept_ra=0`` on the bridge
    only, also when it exists already without it; ``BridgeState.addresses6``
    lists its global IPv6 addresses (``find_bridge`` too). A bridge of that name without
    Locker's mark, or a non-bridge interface of that name, is a
    ``BackendError`` and is left untouched. ``bridge.name`` must be
    ``locker.names.bridge_name(bridge.project)``. *First result.*
    """


@hookspec(firstresult=True)
def subnet_conflicts(bridge: str) -> list[str]:
    """What has come to overlap an existing bridge's subnet: one short
    phrase per IPv4 address on another interface and per route that is not
    only through this bridge (``"address 10.1.1.5/24 on eth9"``, ``"route
    10.1.1.0/25 via 192.0.2.9 dev eth0"``), catch-all routes left out as in
    ``allocate_subnet``; ``locker.subnets.conflicts`` builds the list from
    the host's facts. An empty list when nothing overlaps, or when the
    bridge does not exist or has no IPv4 address. Reads only. Called by
    ``start`` and ``status``, which warn. *First result.*
    """


@hookspec
def remove_bridge(name: str) -> None:
    """Delete the bridge if it carries Locker's owner mark (see
    ``ensure_bridge``); nothing happens when it does not exist. A bridge of
    that name without the mark, or a non-bridge interface, is left untouched
    and is a ``BackendError``. Called by ``cleanup`` after the project's
    containers are stopped."""


@hookspec(firstresult=True)
def find_bridge(name: str) -> BridgeState | None:
    """The bridge as the kernel has it, or None when there is no such
    bridge (a non-bridge interface of that name is None too). A bridge
    without Locker's owner mark (see ``ensure_bridge``) is reported with
    ``owned=False``; one whose ``route_localnet`` is off with
    ``route_localnet=False`` (``locker.link.rules.route_localnet``), and
    ``start`` then calls ``ensure_bridge`` to repair it. Called by
    ``status`` and ``start``. *First result.*"""


@hookspec(firstresult=True)
def ensure_ip_forwarding(ipv6: bool) -> bool:
    """Turn IPv4 forwarding on in the current network namespace, and with
    ``ipv6`` (a project with IPv6 starts) ``net.ipv6.conf.all.forwarding``
    too. Return True when one of them was off (the core then tells the user
    it turned it on), False when all were on already. Never touches
    ``accept_ra`` of any interface but a bridge of Locker's: with IPv6
    forwarding on, an interface with ``accept_ra=1`` stops taking router
    advertisements; the core warns about such interfaces
    (``locker.link.rules.ra_interfaces``). *First result.*"""


# ------------------------------------------------------------------ Events


@hookspec
def container_started(project: str, container: str, address: IPv4Address | None) -> None:
    """Observer: a container of the project has been started by Locker and
    its rules added."""


@hookspec
def container_stopped(project: str, container: str) -> None:
    """Observer: a container of the project has been stopped by Locker and
    its rules removed."""


@hookspec
def rules_changed(project: str, added: Ruleset, removed: Ruleset) -> None:
    """Observer: Locker changed the project's rules; ``added`` and
    ``removed`` hold what was applied."""


@hookspec
def project_cleaned(project: str) -> None:
    """Observer: ``cleanup`` removed the project's rules and bridge."""


FIREWALL_HOOKS = (
    "firewall_availability", "add_nat", "remove_nat", "add_forward", "remove_forward",
    "add_link", "remove_link", "remove_unrecognised", "cleanup", "list_rules",
    "find_blockers",
)
LINK_HOOKS = (
    "link_availability", "allocate_subnet", "ensure_bridge", "subnet_conflicts",
    "remove_bridge", "find_bridge", "ensure_ip_forwarding",
)
EVENT_HOOKS = ("container_started", "container_stopped", "rules_changed", "project_cleaned")
ALL_HOOKS = FIREWALL_HOOKS + LINK_HOOKS + EVENT_HOOKS
