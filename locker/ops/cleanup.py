"""Taking a project's network down: containers, rules, bridge."""

from __future__ import annotations

from locker import faults
from locker.context import Context
from locker.errors import ContainerError, LockerError, raise_all
from locker.journal import Change
from locker.model import Ruleset
from locker.ops import host_names, lifecycle, network
from locker.ops.network import Facts
from locker.plugins import emit
from locker.runtime import ABSENT


def cleanup(ctx: Context, timeout: float = 30.0, keep_orphans: bool = False) -> None:
    """Stop every container of the project (and its orphans, unless
    ``keep_orphans``), remove the project's remaining rules and its bridge.
    Attempts every step and reports every failure together; the chains and
    jumps stay, other projects may use them."""
    facts = network.read_containers(ctx)
    failures: list[LockerError] = []
    names = list(ctx.project.container_names)
    stopped = lifecycle.each(names, lambda n: lifecycle.stop_one(ctx, n, facts.states[n], timeout),
                             failures, ctx.parallel)
    if facts.orphans and keep_orphans:
        ctx.say(f"{ctx.project.name}: kept the orphans {', '.join(facts.orphans)} "
                f"(--keep-orphans)")
    elif facts.orphans:
        lifecycle.each(list(facts.orphans), lambda n: _stop_orphan(ctx, n, timeout), failures,
                       ctx.parallel)
    faults.point("containers-stopped")
    still_up = [n for n in facts.running if n not in stopped]
    steps = (("removing rules", lambda: _remove_rules(ctx)),
             ("stopping the DNS forwarder",
              lambda: None if still_up else network.stop_dns(ctx)),
             ("removing the bridge", lambda: _remove_bridge(ctx, facts, still_up)),
             ("removing the host's names", lambda: host_names.remove(ctx)))
    for what, step in steps:
        try:
            step()
        except LockerError as exc:
            failures.append(ContainerError(what, exc))
        except Exception as exc:  # a plugin's bug must not keep the later steps from running
            bug = LockerError(f"unexpected {type(exc).__name__}: {exc} "
                              f"(a bug in Locker or a plugin; -v shows where)")
            bug.__cause__ = exc
            failures.append(ContainerError(what, bug))
    raise_all(failures, heading="Cleanup was incomplete; run it again once the cause is "
                                "fixed." if failures else None)
    if not ctx.journal.dry_run:
        emit(ctx.manager, "project_cleaned", ctx.warn, project=ctx.project.name)


def _stop_orphan(ctx: Context, name: str, timeout: float) -> None:
    lxc = ctx.lxc(name)
    if network.is_up(ctx.runtime.state(lxc)):
        ctx.journal.change(Change(name, "stopped", "orphan container",
                                  "(the project file no longer lists it)"),
                           lambda: ctx.runtime.stop(lxc, timeout))


def _remove_rules(ctx: Context) -> None:
    with ctx.lock():
        rules = ctx.hooks.list_rules(project=ctx.project.name)
        changes = network.removal_changes(ctx.project.name, rules)
        ctx.journal.changes_many(changes, lambda: ctx.hooks.cleanup(project=ctx.project.name))
        ctx.journal.unless_dry(lambda: ctx.remember(forwards=(), firewall=None))
    if changes and not ctx.journal.dry_run:
        emit(ctx.manager, "rules_changed", ctx.warn, project=ctx.project.name,
             added=Ruleset(), removed=Ruleset(nat=rules.nat, forwards=rules.forwards,
                                              links=rules.links))


def _remove_bridge(ctx: Context, facts: Facts, still_up: list[str]) -> None:
    if still_up:
        raise LockerError(f"{', '.join(still_up)} still run(s), so the bridge "
                          f"{ctx.bridge_name} stays to keep their network.")
    with ctx.lock():
        bridge = ctx.hooks.find_bridge(name=ctx.bridge_name)
        if bridge is not None:
            ctx.journal.change(Change(ctx.project.name, "removed", "bridge", ctx.bridge_name),
                               lambda: ctx.hooks.remove_bridge(name=ctx.bridge_name))
        else:
            ctx.say(f"{ctx.project.name}: bridge {ctx.bridge_name} already gone")
        ctx.journal.unless_dry(lambda: _forget_network(ctx, facts))


def _forget_network(ctx: Context, facts: Facts) -> None:
    if any(state != ABSENT for state in facts.states.values()):
        ctx.remember(subnet=None, creating_bridge=False, link=None, firewall=None, forwards=())
    else:
        ctx.forget()
