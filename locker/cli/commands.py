"""One function per command: build what it needs, call one operation,
render the result. Each returns the exit status (None for success)."""

from __future__ import annotations

import json

from locker.cli import render
from locker.cli.output import Output
from locker.cli.session import open_context, project_of


def _context(args, out: Output):
    trace = out.trace if args.verbose >= 2 else None
    return open_context(args, say=out.say, warn=out.warn, trace=trace)


def _containers(args, ctx):
    return ctx.select(getattr(args, "containers", ()))


def cmd_validate(args, out: Output) -> None:
    project = project_of(args)
    out.print(f"{project.path}: project {project.name!r}, "
              f"{len(project.containers)} container(s), no problems")


def cmd_backends(args, out: Output) -> None:
    from locker.cli.backends import survey

    report = survey(args, out.warn)
    if args.json:
        out.print(json.dumps(report, indent=2))
    else:
        render.backends(out, report)


def cmd_create(args, out: Output) -> None:
    from locker.ops import lifecycle

    ctx = _context(args, out)
    lifecycle.create(ctx, _containers(args, ctx))


def cmd_start(args, out: Output) -> None:
    from locker.ops import lifecycle

    ctx = _context(args, out)
    options = lifecycle.StartOptions(restart=args.restart, ports=args.ports, links=args.links,
                                     add_hosts=args.add_hosts, timeout=args.timeout)
    lifecycle.start(ctx, _containers(args, ctx), options)


def cmd_stop(args, out: Output) -> None:
    from locker.ops import lifecycle

    ctx = _context(args, out)
    lifecycle.stop(ctx, _containers(args, ctx), args.timeout, ports=args.ports, links=args.links)


def cmd_reboot(args, out: Output) -> None:
    from locker.ops import lifecycle

    ctx = _context(args, out)
    containers = _containers(args, ctx)
    lifecycle.stop(ctx, containers, args.timeout)
    lifecycle.start(ctx, containers, lifecycle.StartOptions(timeout=args.timeout))


def cmd_rm(args, out: Output) -> None:
    from locker.ops import lifecycle

    ctx = _context(args, out)
    lifecycle.remove(ctx, _containers(args, ctx))


def cmd_status(args, out: Output) -> None:
    from locker.ops.status import status, to_json

    ctx = _context(args, out)
    result = status(ctx)
    if args.json:
        out.print(json.dumps(to_json(result), indent=2))
    else:
        render.status(out, result)


def _reconcile(args, out: Output, kind_name: str, keep: bool) -> None:
    from locker.ops import network

    ctx = _context(args, out)
    containers = _containers(args, ctx)
    kind = getattr(network, kind_name)
    todo = network.reconcile(ctx, kind, containers, keep=keep)
    if kind is network.LINKS:
        network.write_hosts(ctx, containers, keep=keep)
    render.changes(out, kind.arg, todo)


def cmd_ports(args, out: Output) -> None:
    _reconcile(args, out, "FORWARDS", keep=True)


def cmd_rmports(args, out: Output) -> None:
    _reconcile(args, out, "FORWARDS", keep=False)


def cmd_links(args, out: Output) -> None:
    _reconcile(args, out, "LINKS", keep=True)


def cmd_rmlinks(args, out: Output) -> None:
    _reconcile(args, out, "LINKS", keep=False)


def cmd_cgroup(args, out: Output) -> None:
    from locker.ops import lifecycle

    ctx = _context(args, out)
    lifecycle.apply_cgroup(ctx, _containers(args, ctx))


def cmd_freeze(args, out: Output) -> None:
    from locker.ops import lifecycle

    ctx = _context(args, out)
    lifecycle.freeze(ctx, _containers(args, ctx))


def cmd_unfreeze(args, out: Output) -> None:
    from locker.ops import lifecycle

    ctx = _context(args, out)
    lifecycle.freeze(ctx, _containers(args, ctx), thaw=True)


def cmd_cleanup(args, out: Output) -> None:
    from locker.ops.cleanup import cleanup

    cleanup(_context(args, out), args.timeout)
