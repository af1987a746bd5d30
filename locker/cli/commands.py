"""One function per command, registered with its arguments and options
(``locker.cli.registry``): build what it needs, call one operation, render
the result. Each returns the exit status (None for success). Everything
heavy is imported inside the handlers, so that building the parser
(``locker --help``) imports none of it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from locker.cli.registry import (ADDS, CHANGES, JSON, KEEP_ORPHANS, KEEPS, MIGRATE, NO_LINKS,
                                 NO_PORTS, PARALLEL, TIMEOUT, Option, command, count,
                                 no_arguments, one_container)

if TYPE_CHECKING:
    from locker.cli.output import Output

EXIT_DIFFERS = 1

RESTART = Option(("--restart",), dict(action="store_true",
                                      help="restart containers that run already"))
ADD_HOSTS = Option(("--add-hosts",), dict(
    action="store_true", help="put the containers' names into the host's /etc/hosts"))
#: What start, plan and up take.
STARTING = (TIMEOUT, NO_PORTS, NO_LINKS, RESTART, ADD_HOSTS, MIGRATE, PARALLEL)
FORCE = Option(("--force",), dict(action="store_true", help="stop running containers first"))
RM = Option(("--rm",), dict(dest="remove", action="store_true",
                            help="also delete the containers"))
LINES = Option(("--lines",), dict(type=count, default=None, metavar="N",
                                  help="only the last N lines"))
FOLLOW = Option(("--follow",), dict(action="store_true",
                                    help="keep printing what the console writes"))
CHECK = Option(("--check",), dict(
    action="store_true",
    help="print only what differs; exit 1 when anything does, 0 when all is in place"))


def projects(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("projects", nargs="*", metavar="PROJECT",
                        help="only these projects (default: every one of the host state)")


def exec_arguments(parser: argparse.ArgumentParser) -> None:
    one_container(parser)
    parser.add_argument("exec_command", nargs=argparse.REMAINDER, metavar="CMD",
                        help="the command and its arguments, after --")


def _context(args, out: Output, mode: str = KEEPS, **overrides):
    """The project's context; with --migrate, the rules move first."""
    from locker.cli.session import open_context

    trace = out.trace if args.verbose >= 2 else None
    ctx, migration = open_context(args, say=out.say, warn=out.warn, trace=trace, mode=mode,
                                  **overrides)
    if out.live and not args.json:
        from locker.cli.progress import Progress

        ctx.journal.progress = Progress(out.stderr)
    if migration.firewall:
        from locker.ops.migrate import leave_firewall

        leave_firewall(ctx, migration.firewall)
    return ctx


def _containers(args, ctx):
    return ctx.select(getattr(args, "containers", ()))


def _scope(args, ctx):
    """The containers named, or None for all (orphans too)."""
    return _containers(args, ctx) if getattr(args, "containers", ()) else None


def _changed(args, out: Output, ctx) -> None:
    """After a changing command: the --json list of changes, or the closing
    line of a dry run, or that nothing needed a change."""
    journal = ctx.journal
    if args.json:
        out.print(json.dumps({"dry_run": journal.dry_run,
                              "changes": [c.to_json() for c in journal.changes]}, indent=2))
    elif journal.dry_run:
        out.say(f"{ctx.project.name}: dry run, nothing was changed"
                + ("" if journal.changes else " (and nothing would be)"))
    elif not journal.changes:
        out.say(f"{ctx.project.name}: nothing to change")


def _run(args, out: Output, mode: str, operation: Callable) -> None:
    """A changing command: under the project's lock (see locker.hostlock),
    except a dry run, which changes nothing."""
    ctx = _context(args, out, mode)
    try:
        if ctx.journal.dry_run:
            operation(ctx)
        else:
            with ctx.project_lock(ctx.project.name, waiting=ctx.say):
                operation(ctx)
    except BaseException:
        if args.json:  # a script still learns what was done before the failure
            _changed(args, out, ctx)
        raise
    _changed(args, out, ctx)


def _start_options(args):
    from locker.ops import lifecycle

    return lifecycle.StartOptions(restart=args.restart, ports=args.ports, links=args.links,
                                  add_hosts=args.add_hosts, timeout=args.timeout)


def _runtime_context(args, out: Output):
    """A context with the runtime only: exec, attach, console and logs need
    no backend (and so no backend's warning or failure)."""
    from locker import plugins
    from locker.cli.session import project_of
    from locker.context import Context
    from locker.hostconfig import load_host_config
    from locker.runtime.lxc import LxcRuntime

    project = project_of(args)
    lxcpath = args.lxcpath or load_host_config().lxcpath
    ctx = Context(project, plugins.new_manager(), LxcRuntime(lxcpath), say=out.say,
                  warn=out.warn, lxcpath=lxcpath)
    ctx.select([args.container])
    return ctx


def _status_without_root(args, out: Output) -> None:
    from locker.cli import render
    from locker.cli.session import host_state, project_of
    from locker.hostconfig import load_host_config
    from locker.ops.status import recorded_status, recorded_to_json
    from locker.runtime.lxc import LxcRuntime

    project = project_of(args)
    host = load_host_config()
    record = host_state(host, out.warn).load(project.name)
    runtime = LxcRuntime(args.lxcpath or host.lxcpath or (record.lxcpath if record else None))
    result = recorded_status(project, record, runtime)
    if args.json:
        out.print(json.dumps(recorded_to_json(result), indent=2))
    else:
        render.recorded_status(out, result)


def _rules(command: str, keep: bool, mode: str):
    def handler(args, out: Output) -> None:
        from locker.ops import lifecycle

        _run(args, out, mode,
             lambda ctx: lifecycle.reconcile(ctx, command, _scope(args, ctx), keep=keep))
    return handler


def _records(args, out: Output, names=()):
    from locker.cli.session import host_state
    from locker.errors import ConfigError
    from locker.hostconfig import load_host_config

    state = host_state(load_host_config(), out.warn)
    records = state.all()
    unknown = [n for n in names if n not in {r.project for r in records}]
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: no such project in the host state "
                          f"{state.projects_dir}; `locker ls` lists the projects.")
    return [r for r in records if not names or r.project in names]


def _record_context(args, out: Output, mode: str, dry_run: bool = False):
    """Open a project's context from its record: its file, its lxcpath and
    the backends that made its rules."""
    from pathlib import Path

    from locker.hostconfig import load_host_config
    from locker.projectfile import load_project

    def open_record(record):
        project = load_project(Path(record.file), record.project,
                               ipv6_default=load_host_config().ipv6)
        args.dry_run = dry_run
        return _context(args, out, mode, project=project, lxcpath=record.lxcpath)
    return open_record


# -- the commands, in the order locker --help lists them ------------------------

@command("up",
         "create the containers that are missing, then start (create + start)",
         options=(*STARTING, *CHANGES), changing=True)
def cmd_up(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, ADDS,
         lambda ctx: lifecycle.up(ctx, _containers(args, ctx), _start_options(args)))


@command("down",
         "stop the containers and remove the project's network (--rm: the containers too)",
         arguments=no_arguments, options=(TIMEOUT, PARALLEL, KEEP_ORPHANS, RM, *CHANGES), changing=True)
def cmd_down(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, KEEPS, lambda ctx: lifecycle.down(ctx, args.timeout, args.keep_orphans,
                                                      remove_containers=args.remove))


@command("create",
         "create containers from their template, clone or download",
         options=CHANGES, changing=True)
def cmd_create(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, KEEPS, lambda ctx: lifecycle.create(ctx, _containers(args, ctx)))


@command("start",
         "ensure the bridge and rules, start containers, add their forwards and links",
         options=(*STARTING, *CHANGES), changing=True)
def cmd_start(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, ADDS,
         lambda ctx: lifecycle.start(ctx, _containers(args, ctx), _start_options(args)))


@command("plan",
         "show what start would change, and change nothing (start --dry-run)",
         options=(*STARTING, JSON))
def cmd_plan(args, out: Output) -> None:
    args.dry_run = True
    cmd_start(args, out)


@command("stop",
         "stop containers and remove their forwards and links",
         options=(TIMEOUT, NO_PORTS, NO_LINKS, PARALLEL, *CHANGES), changing=True)
def cmd_stop(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, KEEPS, lambda ctx: lifecycle.stop(
        ctx, _containers(args, ctx), args.timeout, ports=args.ports, links=args.links))


@command("reboot",
         "stop containers if running, then start them",
         options=(TIMEOUT, MIGRATE, PARALLEL, *CHANGES), changing=True)
def cmd_reboot(args, out: Output) -> None:
    """``start --restart``: one pass, so that its dry run is exact too."""
    from locker.ops import lifecycle

    _run(args, out, ADDS, lambda ctx: lifecycle.start(
        ctx, _containers(args, ctx), lifecycle.StartOptions(restart=True, timeout=args.timeout)))


@command("rm",
         "delete stopped containers (--force: stop them first)",
         options=(TIMEOUT, PARALLEL, FORCE, *CHANGES), changing=True)
def cmd_rm(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, KEEPS, lambda ctx: lifecycle.remove(
        ctx, _containers(args, ctx), force=args.force, timeout=args.timeout))


@command("status",
         "show what is really there and what differs from the project file",
         options=(CHECK, JSON), root=False)
def cmd_status(args, out: Output) -> int | None:
    from locker.cli import render
    from locker.cli.privileges import is_root, require_root
    from locker.ops.status import status, to_json

    if not is_root():
        if args.check:  # a verdict needs the kernel's rules
            require_root("status --check")
        return _status_without_root(args, out)
    ctx = _context(args, out, KEEPS)
    result = status(ctx)
    if args.json:
        out.print(json.dumps(to_json(result), indent=2))
    elif args.check:
        render.differences(out, result)
    else:
        render.status(out, result)
    if args.check and not result.in_place:
        return EXIT_DIFFERS
    return None


command("ports", "repair the port forwards of running containers: add, complete, remove stale",
        options=(MIGRATE, *CHANGES), changing=True)(
    _rules("ports", True, ADDS))


command("rmports", "remove the port forwards of containers",
        options=CHANGES, changing=True)(
    _rules("ports", False, KEEPS))


command("links", "repair the links of running containers: add, complete, remove stale",
        options=(MIGRATE, *CHANGES), changing=True)(
    _rules("links", True, ADDS))


command("rmlinks", "remove the links of containers",
        options=CHANGES, changing=True)(
    _rules("links", False, KEEPS))


@command("cgroup",
         "apply the cgroup settings to running containers",
         options=(PARALLEL, *CHANGES), changing=True)
def cmd_cgroup(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, KEEPS, lambda ctx: lifecycle.apply_cgroup(ctx, _containers(args, ctx)))


@command("freeze", "freeze containers", options=(PARALLEL, *CHANGES), changing=True)
def cmd_freeze(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, KEEPS, lambda ctx: lifecycle.freeze(ctx, _containers(args, ctx)))


@command("unfreeze", "thaw frozen containers", options=(PARALLEL, *CHANGES), changing=True)
def cmd_unfreeze(args, out: Output) -> None:
    from locker.ops import lifecycle

    _run(args, out, KEEPS, lambda ctx: lifecycle.freeze(ctx, _containers(args, ctx), thaw=True))


@command("cleanup",
         "stop all containers, remove the project's rules and its bridge",
         arguments=no_arguments, options=(TIMEOUT, PARALLEL, KEEP_ORPHANS, *CHANGES), changing=True)
def cmd_cleanup(args, out: Output) -> None:
    from locker.ops.cleanup import cleanup

    _run(args, out, KEEPS, lambda ctx: cleanup(ctx, args.timeout, args.keep_orphans))


@command("validate",
         "check the project file and report every problem",
         arguments=no_arguments, root=False)
def cmd_validate(args, out: Output) -> None:
    """The file, and what this host adds: the other projects' host ports and
    the host's cgroup version."""
    from locker import cgroups
    from locker.cli.session import host_state, project_of
    from locker.errors import ConfigError
    from locker.hostconfig import load_host_config
    from locker.planner import port_conflicts
    from locker.runtime.lxc import host_uses_cgroup2

    project = project_of(args)
    state = host_state(load_host_config(), out.warn)
    problems = port_conflicts(project, project.container_names, state.others(project.name))
    if problems:
        raise ConfigError(f"{project.path}: {len(problems)} host port(s) are forwarded by "
                          f"another project of this host.", problems)
    cgroups.for_project(project, project.container_names, host_uses_cgroup2())
    out.print(f"{project.path}: project {project.name!r}, "
              f"{len(project.containers)} container(s), no problems")


@command("backends",
         "list the installed backends and which ones this host would use",
         arguments=no_arguments, options=(JSON,), root=False)
def cmd_backends(args, out: Output) -> None:
    from locker.cli import render
    from locker.cli.backends import survey

    report = survey(args, out.warn)
    if args.json:
        out.print(json.dumps(report, indent=2))
    else:
        render.backends(out, report, details=args.verbose >= 1)


@command("ls",
         "list every project of this host, from Locker's host state",
         arguments=no_arguments, options=(JSON,), root=False)
def cmd_ls(args, out: Output) -> None:
    from locker.cli import render
    from locker.cli.privileges import NeedsRoot, is_root
    from locker.ops.host import summarize

    def unprivileged(record):  # the host state is readable, the kernel's rules are not
        raise NeedsRoot("its containers and network can only be checked as root "
                        "(sudo locker ls)")

    opener = _record_context(args, out, KEEPS) if is_root() else unprivileged
    summaries = [summarize(r, opener) for r in _records(args, out)]
    if args.json:
        out.print(json.dumps([render.summary_to_json(s) for s in summaries], indent=2))
    else:
        render.projects(out, summaries)


@command("restore",
         "re-apply the network of running projects after a firewall reload or reboot",
         arguments=projects, options=(MIGRATE, PARALLEL, *CHANGES), changing=True)
def cmd_restore(args, out: Output) -> int | None:
    from locker.cli import render
    from locker.errors import LockerError
    from locker.ops.host import Restored, restore

    opener = _record_context(args, out, ADDS, dry_run=args.dry_run)
    results = []
    for record in _records(args, out, args.projects):
        try:
            ctx = opener(record)
            if args.dry_run:
                results.append(restore(ctx))
            else:
                with ctx.project_lock(ctx.project.name, waiting=ctx.say):
                    results.append(restore(ctx))
        except LockerError as exc:
            results.append(Restored(record.project, 0, error=str(exc).splitlines()[0]))
    if args.json:
        out.print(json.dumps({"dry_run": args.dry_run, "projects": [
            {"project": r.project, "changes": r.changes, "error": r.error,
             "skipped": r.skipped} for r in results]}, indent=2))
    else:
        render.restored(out, results, args.dry_run)
    return 1 if any(r.error for r in results) else None


@command("exec",
         "run a command in a running container: exec CONTAINER -- CMD [ARG ...]",
         arguments=exec_arguments)
def cmd_exec(args, out: Output) -> int:
    from locker.ops import shell

    return shell.execute(_runtime_context(args, out), args.container, args.exec_command)


@command("attach", "a shell in a running container (lxc-attach)", arguments=one_container)
def cmd_attach(args, out: Output) -> int:
    from locker.ops import shell

    return shell.attach(_runtime_context(args, out), args.container)


@command("console",
         "the console of a running container (lxc-console; Ctrl-a q leaves it)",
         arguments=one_container)
def cmd_console(args, out: Output) -> int:
    from locker.ops import shell

    return shell.console(_runtime_context(args, out), args.container)


@command("logs",
         "show a container's console log",
         arguments=one_container, options=(LINES, FOLLOW))
def cmd_logs(args, out: Output) -> None:
    import time

    from locker.ops import shell

    ctx = _runtime_context(args, out)
    text = shell.logs(ctx, args.container, args.lines)
    out.stdout.write(text)
    out.stdout.flush()
    path = getattr(ctx.runtime, "console_log_path", None)
    if not args.follow or path is None:
        return
    log = path(ctx.lxc(args.container))
    with open(log, "rb") as stream:  # until Ctrl-C (exit 130) or SIGTERM (143)
        stream.seek(0, 2)
        while True:
            data = stream.read()
            if data:
                out.stdout.write(data.decode("utf-8", errors="replace"))
                out.stdout.flush()
            else:
                time.sleep(0.5)
