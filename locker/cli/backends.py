"""``locker backends``: every installed backend, whether it can work here
(with what its availability check found, ``Availability.details``), and
which one this host would use, chosen by ``locker.plugins.select`` as every
other command chooses it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from locker import plugins
from locker.cli import privileges
from locker.cli.session import ENV_FIREWALL, ENV_LINK, choose
from locker.errors import LockerError
from locker.hostconfig import load_host_config

NEEDS_ROOT = "its check of this host can only run as root; run locker backends as root"


def survey(args, warn: Callable[[str], None],
           environ: Mapping[str, str] = os.environ) -> dict:
    host = load_host_config(environ)
    wanted = {
        plugins.FIREWALL: choose(args.backend, ENV_FIREWALL, host.firewall, environ),
        plugins.LINK: choose(args.link_backend, ENV_LINK, host.link, environ),
    }
    report = {}
    root = privileges.is_root()
    for namespace, (requested, how) in wanted.items():
        rows = [_row(namespace, name, dist, root, host.backends.get(name))
                for name, dist in plugins.installed(namespace).items()]
        report[plugins.ROLES[namespace].role] = {
            "backends": rows,
            "selected": _selected(namespace, requested, how, root, host.backends)}
    return report


def _row(namespace: str, name: str, dist: str, root: bool, settings) -> dict:
    row = {"name": name, "distribution": dist, "usable": False, "auto": False,
           "reason": NEEDS_ROOT, "warning": None, "details": {}}
    if not root:  # its check would fail for want of root, not of the host
        return {**row, "needs_root": True}
    try:
        answer = plugins.availability(namespace, plugins.load(namespace, name, settings))
    except LockerError as exc:
        return {**row, "reason": str(exc)}
    return {**row, "usable": answer.usable, "auto": answer.auto, "reason": answer.reason,
            "warning": answer.warning, "details": dict(answer.details)}


def _selected(namespace: str, requested: str | None, how: str, root: bool,
              settings) -> dict:
    if not root:
        return {"name": requested, "how": how, "error": "needs root"}
    try:
        chosen = plugins.select(namespace, requested, how, lambda warning: None, settings)
    except LockerError as exc:
        return {"name": requested, "how": how, "error": str(exc)}
    return {"name": chosen.name, "how": chosen.how, "error": None}
