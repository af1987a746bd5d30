"""``--dry-run`` lists exactly what the real run then does, and changes
nothing: for every command that changes something, two identical worlds,
one run dry and one for real, from the same starting point."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from locker.journal import Journal
from locker.model import Forward, TaggedRule
from locker.ops import cleanup, host, lifecycle
from locker.ops.lifecycle import StartOptions
from locker.runtime import STOPPED
from test_ops import BUSYBOX, Env, make_env

IP_WEB = "10.1.1.2"


def snapshot(env: Env) -> tuple:
    """Everything a command may change: the kernel, the containers, the
    host state and the host's hosts file."""
    state = {p.name: p.read_text() for p in sorted(env.ctx.state.projects_dir.glob("*"))} \
        if env.ctx.state.projects_dir.exists() else {}
    hosts = env.ctx.host_hosts.read_text() if env.ctx.host_hosts.exists() else None
    return (env.firewall.rules, copy.deepcopy(env.link.bridges), env.link.ip_forward,
            copy.deepcopy(env.runtime.containers), state, hosts)


def started(env: Env) -> None:
    env.create_all()
    lifecycle.start(env.ctx, env.ctx.select([]), StartOptions(add_hosts=True))


def drifted(env: Env) -> None:
    """Running, then broken behind Locker's back in every way the diff knows."""
    started(env)
    rules = env.firewall.rules
    half = next(f for f in rules.forwards if f.container == "web")
    env.firewall.rules = type(rules)(
        nat=rules.nat, links=frozenset(),
        forwards=frozenset(rules.forwards - {half}
                           | {Forward("shop", "web", 9999, rules_ip(), 99)}),
        partial=frozenset({half}), jumps=False,
        entry_missing=("jump from FORWARD to LOCKER_FORWARD",),
        unrecognised=(TaggedRule("shop", "locker:shop:web:dnat", "LOCKER_PREROUTING", "drop"),))


def rules_ip():
    from ipaddress import IPv4Address
    return IPv4Address(IP_WEB)


def with_orphan(env: Env) -> None:
    started(env)
    env.runtime.create(env.ctx.lxc("old"), BUSYBOX)
    env.runtime.containers[env.ctx.lxc("old")].state = "RUNNING"


def db_stopped(env: Env) -> None:
    started(env)
    env.runtime.containers[env.ctx.lxc("db")].state = STOPPED


def frozen(env: Env) -> None:
    started(env)
    lifecycle.freeze(env.ctx, ["web"])


def nothing(env: Env) -> None:
    pass


def reconcile(command: str, keep: bool = True, containers=None) -> Callable:
    return lambda ctx: lifecycle.reconcile(ctx, command, containers, keep)


CASES: dict[str, tuple[Callable[[Env], None], Callable]] = {
    "create": (nothing, lambda ctx: lifecycle.create(ctx, ctx.select([]))),
    "start": (lambda env: env.create_all(), lambda ctx: lifecycle.start(ctx, ctx.select([]))),
    "start --add-hosts": (lambda env: env.create_all(), lambda ctx: lifecycle.start(
        ctx, ctx.select([]), StartOptions(add_hosts=True))),
    "start (repair)": (drifted, lambda ctx: lifecycle.start(ctx, ctx.select([]))),
    "start --restart": (started, lambda ctx: lifecycle.start(
        ctx, ["web"], StartOptions(restart=True))),
    "stop": (started, lambda ctx: lifecycle.stop(ctx, ["web", "db"])),
    "reboot": (started, lambda ctx: lifecycle.start(ctx, ["web", "db"],
                                                    StartOptions(restart=True))),
    "rm": (lambda env: env.create_all(), lambda ctx: lifecycle.remove(ctx, ["web"])),
    "ports": (drifted, reconcile("ports")),
    "ports (stopped behind its back)": (db_stopped, reconcile("ports")),
    "rmports": (started, reconcile("ports", keep=False)),
    "links": (drifted, reconcile("links")),
    "rmlinks": (started, reconcile("links", keep=False, containers=["db"])),
    "cgroup": (started, lambda ctx: lifecycle.apply_cgroup(ctx, ctx.select([]))),
    "freeze": (started, lambda ctx: lifecycle.freeze(ctx, ctx.select([]))),
    "unfreeze": (frozen, lambda ctx: lifecycle.freeze(ctx, ctx.select([]), thaw=True)),
    "cleanup": (with_orphan, lambda ctx: cleanup.cleanup(ctx)),
    "cleanup --keep-orphans": (with_orphan, lambda ctx: cleanup.cleanup(ctx, keep_orphans=True)),
    "restore": (drifted, lambda ctx: host.restore(ctx)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_dry_run_lists_exactly_what_the_real_run_does(case: str, tmp_path: Path) -> None:
    prepare, command = CASES[case]
    dry, real = make_env(tmp_path / "dry"), make_env(tmp_path / "real")
    for env in (dry, real):
        prepare(env)
    dry.ctx.journal = Journal(dry_run=True, report=dry.said.append)
    real.ctx.journal = Journal(report=real.said.append)
    before = snapshot(dry)
    dry.said.clear()
    real.said.clear()

    command(dry.ctx)
    command(real.ctx)

    assert snapshot(dry) == before, "the dry run changed something"
    assert real.ctx.journal.changes, "the case changes nothing: it proves nothing"
    assert dry.ctx.journal.changes == real.ctx.journal.changes
    as_dry = {c.line(): c.line(dry_run=True) for c in real.ctx.journal.changes}
    assert dry.said == [as_dry.get(line, line) for line in real.said]
    assert snapshot(real) != before or case == "rmlinks"


def test_a_dry_runs_lines_say_would_be(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env.create_all()
    env.ctx.journal = Journal(dry_run=True, report=env.said.append)
    lifecycle.start(env.ctx, ["web"])
    assert "shop: would create bridge locker_shop 10.1.1.1/24" in env.said
    assert "web: would start (10.1.1.2)" in env.said
    assert "web: would add forward 8080/tcp -> 10.1.1.2:80" in env.said
    assert "web: would rewrite /etc/hosts" in env.said
