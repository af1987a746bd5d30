"""``--migrate``: move a project's rules from the firewall backend that
made them to the one chosen now."""

from __future__ import annotations

from locker import plugins
from locker.context import Context
from locker.errors import LockerError
from locker.journal import Change
from locker.ops import network


def leave_firewall(ctx: Context, old: str) -> None:
    """Remove the project's rules through ``old``, the backend that made
    them; the command then adds them through the selected one. When ``old``
    cannot be loaded here, say so and leave its rules."""
    project = ctx.project.name
    try:
        plugin = plugins.load(plugins.FIREWALL, old)
        answer = plugins.availability(plugins.FIREWALL, plugin)
        if not answer.usable:
            raise LockerError(answer.reason)
    except LockerError as exc:
        ctx.warn(f"The firewall backend {old}, which made project {project}'s rules, cannot "
                 f"work here ({exc}); its rules stay where they are: remove them by hand.")
        ctx.journal.unless_dry(lambda: _forget(ctx))
        return
    hook = plugins.new_manager(plugin).hook
    with ctx.lock():
        rules = hook.list_rules(project=project)
        changes = network.removal_changes(project, rules, f"removed (from {old})")
        ctx.journal.changes_many(changes or [Change(project, "left", f"the {old} backend")],
                                 lambda: hook.cleanup(project=project))
        ctx.journal.unless_dry(lambda: _forget(ctx))


def _forget(ctx: Context) -> None:
    ctx.remember(firewall=ctx.firewall_name, forwards=())
