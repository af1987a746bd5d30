"""``locker backends``: every installed backend, whether it can work here,
and which one this host would use."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from locker import plugins
from locker.cli import privileges
from locker.cli.session import ENV_FIREWALL, ENV_LINK, choose
from locker.errors import LockerError
from locker.hostconfig import load_host_config


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
        rows = []
        for name, dist in plugins.installed(namespace).items():
            if not root:  # its check would fail for want of root, not of the host
                rows.append({"name": name, "distribution": dist, "usable": False,
                             "auto": False, "needs_root": True,
                             "reason": "its check of this host can only run as "
                                       "root; run locker backends as root",
                             "warning": None})
                continue
            try:
                answer = plugins.availability(namespace, plugins.load(namespace, name))
                row = {"name": name, "distribution": dist, "usable": answer.usable,
                       "auto": answer.auto, "reason": answer.reason,
                       "warning": answer.warning}
            except LockerError as exc:
                row = {"name": name, "distribution": dist, "usable": False, "auto": False,
                       "reason": str(exc), "warning": None}
            rows.append(row)
        report[plugins.ROLES[namespace].role] = {
            "backends": rows, "selected": _selected(rows, requested, how)}
    return report


def _selected(rows: list[dict], requested: str | None, how: str) -> dict:
    if any(r.get("needs_root") for r in rows):
        return {"name": requested, "how": how, "error": "needs root"}
    if requested:
        row = next((r for r in rows if r["name"] == requested), None)
        if row is None:
            return {"name": requested, "how": how, "error": "not installed"}
        if not row["usable"]:
            return {"name": requested, "how": how, "error": row["reason"]}
        return {"name": requested, "how": how, "error": None}
    row = next((r for r in rows if r["usable"] and r["auto"]), None)
    if row is None:
        return {"name": None, "how": how, "error": "no installed backend can work here"}
    return {"name": row["name"], "how": how, "error": None}
