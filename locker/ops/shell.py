"""At a container's keyboard: ``exec``, ``attach``, ``console``, ``logs``.

They need only the runtime, no backend: each checks that the container is
created (and, but for ``logs``, running), then hands the user's terminal
to LXC. They change nothing Locker keeps, so they are not in the journal.
"""

from __future__ import annotations

from collections.abc import Sequence

from locker.context import Context
from locker.errors import ContainerError, LockerError, NotCreated
from locker.runtime import ABSENT, RUNNING, STOPPED


def _ready(ctx: Context, name: str, what: str, running: bool = True) -> str:
    """The container's LXC name; raises, in the commands' words, when it is
    not created or (``running``) does not run."""
    lxc = ctx.lxc(name)
    state = ctx.runtime.state(lxc)
    if state == ABSENT:
        ctx.say(f"{name}: not created")
        raise NotCreated([name])
    if running and state != RUNNING:
        hint = {STOPPED: f"run `locker start {name}` first",
                "FROZEN": f"run `locker unfreeze {name}` first"}.get(
                    state, f"check `lxc-info -n {lxc}`")
        raise ContainerError(name, LockerError(
            f"cannot {what}: it is {state.lower()}; {hint}."))
    return lxc


def execute(ctx: Context, name: str, command: Sequence[str]) -> int:
    """``exec NAME -- CMD...``: the command's exit status."""
    if not command:
        raise LockerError(f"exec needs a command: locker exec {name} -- CMD [ARG ...] "
                          f"(or `locker attach {name}` for a shell).")
    return ctx.runtime.attach(_ready(ctx, name, "run a command in it"), command)


def attach(ctx: Context, name: str) -> int:
    """``attach NAME``: a shell in the container."""
    return ctx.runtime.attach(_ready(ctx, name, "attach to it"))


def console(ctx: Context, name: str) -> int:
    return ctx.runtime.console(_ready(ctx, name, "open its console"))


def logs(ctx: Context, name: str, lines: int | None = None) -> str:
    """The container's console log (its last ``lines``), also of a stopped
    container; a container configured before Locker kept one has none."""
    lxc = _ready(ctx, name, "read its log", running=False)
    text = ctx.runtime.console_log(lxc)
    if text is None:
        raise ContainerError(name, LockerError(
            "it has no console log yet: Locker has LXC write one from the container's next "
            f"start on (`locker start --restart {name}`)."))
    if lines is not None:
        kept = text.splitlines(keepends=True)[-lines:] if lines else []
        text = "".join(kept)
    return text
