"""Taking a project's network down: containers, rules, bridge."""

from __future__ import annotations

from locker.context import Context
from locker.errors import LockerError
from locker.ops import host_names, lifecycle, network
from locker.plugins import emit


def cleanup(ctx: Context, timeout: float = 30.0) -> None:
    """Stop every container of the project, remove the project's remaining
    rules and its bridge. Attempts every step and reports every failure
    together; the chains and jumps stay, other projects may use them."""
    failures = []
    steps = (
        ("stopping containers", lambda: lifecycle.stop(ctx, ctx.project.container_names, timeout)),
        ("removing rules", lambda: _remove_rules(ctx)),
        ("removing the bridge", lambda: _remove_bridge(ctx)),
        ("removing the host's names", lambda: host_names.remove(ctx)),
    )
    for what, step in steps:
        try:
            step()
        except LockerError as exc:
            failures.append(f"{what}: {exc}")
        except Exception as exc:  # a plugin's bug must not keep the later steps from running
            failures.append(f"{what}: unexpected {type(exc).__name__}: {exc} "
                            f"(a bug in Locker or a plugin; -v shows where)")
    if failures:
        raise LockerError("Cleanup was incomplete; run it again once the cause is fixed.\n"
                          + "\n".join(failures))
    ctx.say(f"{ctx.project.name}: rules and bridge {ctx.bridge_name} removed")
    emit(ctx.manager, "project_cleaned", ctx.warn, project=ctx.project.name)


def _remove_bridge(ctx: Context) -> None:
    running = [name for name, state in network.states(ctx).items() if network.is_up(state)]
    if running:
        raise LockerError(f"{', '.join(running)} still run(s), so the bridge "
                          f"{ctx.bridge_name} stays to keep their network.")
    ctx.hooks.remove_bridge(name=ctx.bridge_name)


def _remove_rules(ctx: Context) -> None:
    with ctx.lock():
        ctx.hooks.cleanup(project=ctx.project.name)


