"""End-to-end tests: the installed ``locker`` command against real busybox
LXC containers, once per firewall backend (``--backend nftables`` and
``--backend iptables``) and link backend (``--link-backend netlink`` and
``--link-backend ipr2``): four worlds. ``pytest tests/e2e --locker-firewall
NAME --locker-link NAME`` runs them against any installed backends instead
(see ``world_pairs``).

The world (``world.World``, one per test module and pair of backends):

- a *host* network namespace where every ``locker``, ``lxc-*`` and rule
  dump runs (``ip netns exec``, with the machine's cgroup hierarchies
  visible as on a real host). Its veth ``uplink`` has 192.0.2.1/24 and
  192.0.2.10/24, and its default route goes to the outside;
- an *outside* namespace (192.0.2.2/24 on the other end of ``uplink``) that
  plays the outside client and the internet;
- a temporary lxcpath (``-P``), run directory (``LOCKER_RUN_DIR``), an empty
  host configuration file (``LOCKER_CONFIG``, so /etc/locker is not read)
  and one directory per project holding the ``locker.yaml`` a test writes.

In the iptables world the host's legacy FORWARD policy is DROP, so that
Locker's own accepts are what lets forwarded traffic through. (With nftables
an accept in Locker's table cannot override a drop in another table, see
plugins/nftables/README.md, so that world keeps the default policy.)
Traffic between two containers on one bridge reaches FORWARD only through
``br_netfilter`` with ``bridge-nf-call-iptables=1``, a per-namespace sysctl
that a new namespace starts with 1 when the module is loaded; the tests only
read it (``World.bridge_netfilter_problem``) and never load the module, which
would affect the machine's own namespace too. The test that needs it skips
without it.

Finalizers always kill and destroy every container of the lxcpath, end the
servers started in the outside namespace and delete both namespaces. Nothing
runs in the machine's own network namespace.

A backend whose plugin is not installed, or that ``locker backends`` calls
unusable inside the host namespace, skips its tests with the reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from locker.testing.pytest_plugin import backends_from_options
from world import EXAMPLE_PAIR, EXAMPLE_TESTS, FIREWALL_PAIRS, World, missing_requirements


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "world" in metafunc.fixturenames:
        pairs = world_pairs(metafunc.config, getattr(metafunc.module, "WORLDS", FIREWALL_PAIRS))
        if metafunc.function.__name__ in EXAMPLE_TESTS and not chosen_backends(metafunc.config):
            pairs = pairs + [EXAMPLE_PAIR]
        metafunc.parametrize("world", pairs, ids=["-".join(p) for p in pairs],
                             indirect=True, scope="module")


def world_pairs(config: pytest.Config, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (firewall, link) worlds a module runs in. A module names its own
    (WORLDS), else it runs once per shipped firewall backend with the
    built-in link backend. ``--locker-firewall NAME`` and ``--locker-link
    NAME`` (options of Locker's pytest plugin) put any installed backend in
    their place: that is how a third-party backend runs this suite, and the
    shipped ones take the same path. ``LOCKER_E2E_BACKENDS=FIREWALL:LINK``
    is the same as giving both options."""
    chosen = os.environ.get("LOCKER_E2E_BACKENDS")
    if chosen:
        firewall, _, link = chosen.partition(":")
        pairs = [(firewall, link or "netlink")]
    return backends_from_options(config, pairs)


def chosen_backends(config: pytest.Config) -> bool:
    """Whether the run names its backends (options or LOCKER_E2E_BACKENDS)."""
    return bool(os.environ.get("LOCKER_E2E_BACKENDS") or config.getoption("locker_firewall")
                or config.getoption("locker_link"))


def backend_problem(world: World) -> str | None:
    """Why ``world.backend`` or ``world.link`` cannot be used in the world's
    host namespace (asked of the installed command itself), or None."""
    done = world.locker(world.root, "backends", "--json", backend=False, check=False)
    if done.returncode != 0:
        return f"`locker backends --json` failed: {done.stderr.strip()}"
    listing = json.loads(done.stdout)
    for role, name in (("firewall", world.backend), ("link", world.link)):
        found = {b["name"]: b for b in listing[role]["backends"]}
        entry = found.get(name)
        if entry is None:
            folder = {"netlink": ".", "nftables": "plugins/nftables", "iptables":
                      "plugins/iptables", "ipr2": "plugins/ipr2"}.get(name, "its distribution")
            return f"the {name} {role} backend is not installed (pip install -e {folder})"
        if not entry["usable"]:
            return f"the {name} {role} backend cannot work here: {entry['reason']}"
    return None


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    firewall, link = request.param
    w = World(tmp_path_factory.mktemp(f"e2e-{firewall}-{link}"), firewall, link)
    try:
        reason = backend_problem(w)
        if reason:
            pytest.skip(reason)
        if w.backend == "iptables":
            # where forwarding is dropped, only Locker's accepts let traffic
            # through (an nftables accept cannot override another table's drop)
            w.host.run(["iptables-legacy", "-P", "FORWARD", "DROP"])
        yield w
    finally:
        w.close()
    leftovers = w.container_names()
    assert not leftovers, f"containers left behind in {w.lxcpath}: {leftovers}"

