"""From the parsed command line and the environment to a Context: the
project file, the host file, the host state, the chosen backends, the
runtime."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from locker import plugins
from locker.context import Context
from locker.errors import ConfigError
from locker.hostconfig import load_host_config
from locker.journal import Journal
from locker.project import HostConfig, Project
from locker.projectfile import load_project
from locker.cli.registry import ADDS, KEEPS  # noqa: F401 (where the modes were before)
from locker.hostlock import run_dir
from locker.services.dns import DnsForwarder
from locker.state import HostState, ProjectRecord, state_dir

ENV_FIREWALL = "LOCKER_BACKEND"
ENV_LINK = "LOCKER_LINK_BACKEND"

#: How a command treats a project whose rules another backend made:
#: ``adds`` commands refuse unless --migrate; ``keeps`` commands (stop,
#: cleanup, status, ...) use the recorded backend.


def choose(option: str | None, env_var: str, host_value: str | None,
           environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The backend name and where it came from: command line, then
    environment, then host file; None means auto-detection."""
    if option:
        return option, "command line"
    if environ.get(env_var):
        return environ[env_var], f"environment {env_var}"
    if host_value:
        return host_value, "host file"
    return None, "auto-detection"


def project_of(args, environ: Mapping[str, str] = os.environ) -> Project:
    """The project file, named by -p, then LOCKER_PROJECT, then its own
    ``name:`` key, then its directory (``load_project``)."""
    from locker.projectfile import ENV_PROJECT

    ipv6 = load_host_config(environ).ipv6
    if args.project is not None:
        return load_project(Path(args.file), args.project, ipv6_default=ipv6)
    if environ.get(ENV_PROJECT):
        return load_project(Path(args.file), environ[ENV_PROJECT],
                            f"from the environment {ENV_PROJECT}", ipv6_default=ipv6)
    return load_project(Path(args.file), ipv6_default=ipv6)


def host_state(host: HostConfig, warn: Callable[[str], None],
               environ: Mapping[str, str] = os.environ) -> HostState:
    return HostState(state_dir(host.state_dir, environ), warn)


#: Commands that change nothing: a backend's warning is said once per host
#: (until reboot: the marker is in the run directory) for these, and once
#: for the changing ones.
READING = {"status", "plan", "ls", "backends", "validate"}


def warn_once(warn: Callable[[str], None], args,
              environ: Mapping[str, str] = os.environ) -> Callable[[str], None]:
    """``warn``, but a message said before on this host by a command of the
    same class (reading or changing, see ``READING``) is not said again.
    Markers: ``$LOCKER_RUN_DIR/warned/CLASS-HASH`` (default /run/locker),
    gone at reboot; where they cannot be written, every warning is said."""
    import hashlib

    from locker.hostlock import DEFAULT_RUN_DIR

    reading = getattr(args, "command", None) in READING or getattr(args, "dry_run", False)
    kind = "reading" if reading else "changing"

    def once(message: str) -> None:
        digest = hashlib.sha256(message.encode()).hexdigest()[:16]
        marker = Path(environ.get("LOCKER_RUN_DIR", DEFAULT_RUN_DIR), "warned",
                      f"{kind}-{digest}")
        try:
            if marker.exists():
                return
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass
        warn(message)
    return once


def select_backends(args, host: HostConfig, environ: Mapping[str, str],
                    warn: Callable[[str], None]) -> tuple[plugins.Selected, plugins.Selected]:
    warn = warn_once(warn, args, environ)
    firewall = plugins.select(plugins.FIREWALL, *choose(args.backend, ENV_FIREWALL,
                                                        host.firewall, environ), warn,
                              host.backends)
    link = plugins.select(plugins.LINK, *choose(args.link_backend, ENV_LINK,
                                                host.link, environ), warn, host.backends)
    return firewall, link


@dataclass(frozen=True)
class Migration:
    """Backends that made the project's rules and that --migrate leaves."""

    firewall: str | None = None
    link: str | None = None


def select_for_project(args, host: HostConfig, record: ProjectRecord | None,
                       environ: Mapping[str, str], warn: Callable[[str], None],
                       mode: str) -> tuple[plugins.Selected, plugins.Selected, Migration]:
    """The backends for a project with a host-state record: the recorded
    ones unless another is chosen; another one chosen is refused (exit 2)
    unless --migrate, or (``KEEPS``) overruled by the recorded one. A
    backend's own warning is said once per host and command class."""
    migrate = getattr(args, "migrate", False)
    say_once = warn_once(warn, args, environ)
    picked = {}
    leaving = {}
    for namespace, option, env_var, host_value, recorded in (
            (plugins.FIREWALL, args.backend, ENV_FIREWALL, host.firewall,
             record.firewall if record else None),
            (plugins.LINK, args.link_backend, ENV_LINK, host.link,
             record.link if record else None)):
        requested, how = choose(option, env_var, host_value, environ)
        role = plugins.ROLES[namespace].role
        if recorded is None or requested in (None, recorded):
            name = requested or recorded
            picked[namespace] = plugins.select(
                namespace, name, how if requested else "host state", say_once, host.backends)
            continue
        if mode == KEEPS:
            warn(f"Project {record.project}'s {role} setup was made by the {role} backend "
                 f"{recorded}; using it rather than {requested} ({how}).")
            picked[namespace] = plugins.select(namespace, recorded, "host state", say_once,
                                               host.backends)
        elif migrate:
            picked[namespace] = plugins.select(namespace, requested, how, say_once,
                                               host.backends)
            leaving[namespace] = recorded
        else:
            flag = "--backend" if namespace == plugins.FIREWALL else "--link-backend"
            raise ConfigError(
                f"Project {record.project}'s {role} setup was made by the {role} backend "
                f"{recorded!r}, but {requested!r} is chosen ({how}), which would make a "
                f"second set. Add --migrate to move it to {requested}, or choose "
                f"{flag} {recorded}.")
    return (picked[plugins.FIREWALL], picked[plugins.LINK],
            Migration(leaving.get(plugins.FIREWALL), leaving.get(plugins.LINK)))


def default_parallelism() -> int:
    """Starting and stopping containers is mostly waiting for them, not
    work for the CPUs: eight per CPU, 8 to 32."""
    return max(8, min(32, 8 * (os.cpu_count() or 1)))


def open_context(args, say: Callable[[str], None], warn: Callable[[str], None],
                 trace: Callable[[str], None] | None = None,
                 environ: Mapping[str, str] = os.environ, mode: str = KEEPS,
                 project: Project | None = None, lxcpath: str | None = None
                 ) -> tuple[Context, Migration]:
    """The context of one project's command, and the backends a --migrate
    leaves (the caller moves the rules)."""
    project = project or project_of(args)
    host = load_host_config(environ)
    state = host_state(host, warn, environ)
    record = state.load(project.name)
    firewall, link, migration = select_for_project(args, host, record, environ, warn, mode)
    manager = plugins.register(firewall, link, plugins.load_observers(warn), warn)
    if trace:
        plugins.trace_to(manager, trace)
    from locker.runtime.lxc import LxcRuntime

    lxcpath = lxcpath or args.lxcpath or host.lxcpath
    quiet = getattr(args, "json", False)
    journal = Journal(dry_run=getattr(args, "dry_run", False),
                      report=(lambda line: None) if quiet else None)
    ctx = Context(project, manager, LxcRuntime(lxcpath), say=say, warn=warn, journal=journal,
                  state=state, firewall_name=firewall.name, link_name=link.name,
                  lxcpath=lxcpath, pool=host.pool,
                  parallel=getattr(args, "parallel", None) or default_parallelism(),
                  dns=DnsForwarder(project.name, run_dir()) if host.dns_forwarder else None,
                  isolated_default=host.isolated, ipv6_default=host.ipv6,
                  ipv6_prefix=host.ipv6_prefix, ipv6_nat=host.ipv6_nat)
    return ctx, migration
