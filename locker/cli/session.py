"""From the parsed command line and the environment to a Context: the
project file, the host file, the chosen backends, the runtime."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from locker import plugins
from locker.context import Context
from locker.hostconfig import load_host_config
from locker.project import HostConfig, Project
from locker.projectfile import load_project

ENV_FIREWALL = "LOCKER_BACKEND"
ENV_LINK = "LOCKER_LINK_BACKEND"


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


def project_of(args) -> Project:
    return load_project(Path(args.file), args.project)


def select_backends(args, host: HostConfig, environ: Mapping[str, str],
                    warn: Callable[[str], None]) -> tuple[plugins.Selected, plugins.Selected]:
    firewall = plugins.select(plugins.FIREWALL, *choose(args.backend, ENV_FIREWALL,
                                                        host.firewall, environ), warn)
    link = plugins.select(plugins.LINK, *choose(args.link_backend, ENV_LINK,
                                                host.link, environ), warn)
    return firewall, link


def open_context(args, say: Callable[[str], None], warn: Callable[[str], None],
                 trace: Callable[[str], None] | None = None,
                 environ: Mapping[str, str] = os.environ) -> Context:
    project = project_of(args)
    host = load_host_config(environ)
    firewall, link = select_backends(args, host, environ, warn)
    manager = plugins.register(firewall, link, plugins.load_observers(warn), warn)
    if trace:
        plugins.trace_to(manager, trace)
    from locker.runtime.lxc import LxcRuntime

    runtime = LxcRuntime(args.lxcpath or host.lxcpath)
    return Context(project, manager, runtime, say=say, warn=warn)
